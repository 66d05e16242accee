"""The txtai side of ``benchmarks.peer``: chunks become txtai rows, txtai's rows become judged hits."""
import pytest

pytest.importorskip("txtai")

from benchmarks.peer import Corpus, Peer, PeerHit, documents, judged_hits  # noqa: E402
from evaluation.metrics import LabelledQuery, Span, judge  # noqa: E402
from index.library import SearchRequest  # noqa: E402
from index.ranking import SearchFilters  # noqa: E402
from ingest.records import Chunk, Recording  # noqa: E402


def corpus() -> Corpus:
    recordings = {rid: Recording(rid, rid, f"/library/{rid}.srt", f"hash-{rid}", 120.0, rid[-2:])
                  for rid in ("talk-en", "talk-ko")}
    english = "Pipes burst in winter."
    chunks = [Chunk("talk-en", 0.0, 20.0, "en", english, None, 0, 1),
              Chunk("talk-ko", 0.0, 25.0, "ko", "겨울에는 수도관이 터집니다.", english, 0, 2),
              Chunk("talk-ko", 25.0, 50.0, "ko", "여름에는 비가 많이 옵니다.", None, 1, 3)]
    return Corpus(recordings, {chunk.id: chunk for chunk in chunks})


def test_each_chunk_is_a_row_as_said_and_a_row_in_english_when_it_has_a_rendering():
    rows = documents(corpus())
    assert [(row["id"], row["chunk"], row["language"]) for row in rows] == [
        ("1:spoken", 1, "en"), ("2:spoken", 2, "ko"), ("2:english", 2, "ko"), ("3:spoken", 3, "ko")]
    assert rows[2]["text"] == "Pipes burst in winter."


def test_a_chunk_found_through_both_rows_is_one_hit_spanning_the_whole_chunk():
    rows = [{"id": "2:english", "chunk": 2}, {"id": "1:spoken", "chunk": 1}, {"id": "2:spoken", "chunk": 2},
            {"id": "3:spoken", "chunk": 3}]
    hits = judged_hits(rows, corpus(), 2)
    assert hits == [PeerHit("/library/talk-ko.srt", 0.0, 25.0), PeerHit("/library/talk-en.srt", 0.0, 20.0)]
    label = LabelledQuery("pipes in winter", (Span("talk-ko.srt", 3.0, 6.0),))
    assert judge(label, hits).rank == 1 and judge(label, hits).recording_at_1


def test_a_filtered_search_answers_from_that_language_only():
    peer = Peer(corpus(), "lexical", model="", where="fake")  # BM25 alone: no model to load
    request = SearchRequest("pipes burst in winter", 10, "lexical", SearchFilters(language="ko"))
    assert peer.search(request) == [PeerHit("/library/talk-ko.srt", 0.0, 25.0)]
    unfiltered = peer.search(SearchRequest("pipes burst in winter", 10, "lexical"))
    assert PeerHit("/library/talk-en.srt", 0.0, 20.0) in unfiltered
