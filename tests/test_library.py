"""The library over each store backend (embedded SQLite + FAISS, and PostgreSQL + pgvector) and
the search logic, with a small hashing embedder (the real model is covered end to end elsewhere)."""
from pathlib import Path

import numpy as np
import pytest

from index.library import Library, LibraryError
from index.ranking import SearchFilters, merge_overlapping
from index.store import StoreError, is_server
from index.vectors import VectorSettings
from ingest.records import Chunk, Segment, Transcript, Word
from tests.helpers import HashingEmbedder, add


def add_spans(library: Library, rid: str, texts: list[tuple[float, float, str, str | None]], language: str = "en") -> None:
    """One segment and one chunk per (start, end, text, English): chunks may overlap, as ingest's do."""
    segments = [Segment(s, e, t, language, [Word(s, e, " " + t)], tr) for s, e, t, tr in texts]
    chunks = [Chunk(rid, s, e, language, t, tr, i) for i, (s, e, t, tr) in enumerate(texts)]
    add(library, rid, Transcript(language, 60.0, segments), chunks)


@pytest.fixture
def library(location, hashing_embedder):
    lib = Library(location("lib"), hashing_embedder)
    add_spans(lib, "aaa", [(0, 20, "five G pilots in the riverside district", None),
                           (15, 35, "twelve base stations on rooftops", None)])
    add_spans(lib, "bbb", [(0, 20, "умные светофоры в казани", "smart traffic lights in kazan"),
                           (20, 40, "защита персональных данных", "protection of personal data")], "ru")
    return lib


def test_search_finds_the_right_chunk_and_scores_the_better_view(library):
    hits = library.search("smart traffic lights", mode="dense")
    assert hits[0].recording_id == "bbb" and hits[0].start == 0
    assert hits[0].text == "умные светофоры в казани"
    assert hits[0].translation == "smart traffic lights in kazan"
    # only the English view shares words with the query: it carries the score
    assert hits[0].score > 0.5 > max(h.score for h in hits[1:])


def test_filters_by_language_and_recording(library):
    assert {h.language for h in library.search("data", filters=SearchFilters(language="ru"))} == {"ru"}
    assert {h.recording_id for h in library.search("data", filters=SearchFilters(recordings=["aaa"]))} == {"aaa"}


def test_overlapping_chunks_of_one_recording_merge_into_one_hit():
    a = Chunk("r", 0, 20, "en", "One. Two.", None)
    b = Chunk("r", 15, 35, "en", "Two. Three.", None)
    c = Chunk("s", 0, 20, "en", "Other.", None)
    merged = merge_overlapping([(b, 0.895), (a, 0.9), (c, 0.85), (Chunk("s", 10, 30, "en", "Weak.", None), 0.5)])
    assert [(m.recording_id, m.start, m.end, m.text, s) for m, s in merged] == [("r", 0, 35, "One. Two. Three.", 0.9), ("s", 0, 20, "Other.", 0.85)]


def test_delete_removes_catalog_rows_and_vectors_and_ids_survive(library, location, hashing_embedder):
    store = library.store
    before = store.vectors.chunk_ids()
    gone = library.delete("aaa")
    assert gone.id == "aaa"
    assert [r.id for r in store.records.recordings()] == ["bbb"]
    remaining = {c.id for c in store.records.chunks_of("bbb")}
    assert store.vectors.chunk_ids() == remaining < before
    assert len(store.vectors) == 4  # two chunks, each as spoken and in English
    # reopening sees the same state, and the surviving ids still resolve
    reopened = Library(location("lib"), hashing_embedder)
    assert reopened.search("personal data")[0].recording_id == "bbb"
    add_spans(reopened, "ccc", [(0, 10, "new talk about bridges", None)])
    assert reopened.search("bridges")[0].recording_id == "ccc"
    # new chunk ids never reuse a deleted one
    assert min(c.id for c in reopened.store.records.chunks_of("ccc")) > max(before)


def test_unknown_and_ambiguous_references_are_errors(library):
    with pytest.raises(LibraryError, match="no recording 'zzz'"):
        library.resolve("zzz")
    assert library.resolve("Talk aaa").id == "aaa"
    add_spans(library, "aab", [(0, 5, "x", None)])
    with pytest.raises(LibraryError, match="matches 2 recordings"):
        library.resolve("aa")


def test_empty_library_and_empty_query_are_errors(location, hashing_embedder, library):
    with pytest.raises(LibraryError, match="is empty"):
        Library(location("empty"), hashing_embedder).search("anything")
    with pytest.raises(LibraryError, match="empty query"):
        library.search("   ")


def test_other_embedding_model_is_refused_until_reindex(library, location):
    other = Library(location("lib"), HashingEmbedder("other-model"))
    with pytest.raises(LibraryError, match="built with embedding model 'hashing-test'"):
        other.search("traffic")
    with pytest.raises(LibraryError, match="reindex"):
        add_spans(other, "ddd", [(0, 5, "x", None)])
    assert other.reindex() == 4
    assert other.search("smart traffic lights")[0].recording_id == "bbb"
    with pytest.raises(LibraryError):
        Library(location("lib"), HashingEmbedder("hashing-test")).search("traffic")


def test_reindex_with_a_model_of_another_size(library, location):
    """A model whose vectors are of another size (a companion model beside e5) re-embeds the
    embedded store in place: the new segments are taken on in one commit and the old ones
    removed. PostgreSQL's table holds one size: it refuses, and the library stays as it was."""
    narrow = Library(location("lib"), HashingEmbedder("narrow", dimension=32))
    if is_server(location("lib")):
        with pytest.raises(StoreError, match="32-d"):
            narrow.reindex()
        assert library.search("smart traffic lights")[0].recording_id == "bbb"
        return
    assert narrow.reindex() == 4
    assert narrow.search("smart traffic lights")[0].recording_id == "bbb"
    with pytest.raises(LibraryError, match="built with embedding model 'narrow'"):
        library.search("traffic")
    again = Library(location("lib"), HashingEmbedder("narrow", dimension=32))
    assert again.search("smart traffic lights")[0].recording_id == "bbb"
    assert {np.load(path, mmap_mode="r").shape[1] for path in (location("lib") / "vectors").glob("*.vec.npy")} == {32}


def test_a_saved_search_graph_of_the_old_size_is_not_used_after_reindex(tmp_path, hashing_embedder):
    graph = VectorSettings(ann_min=2)
    library = Library(tmp_path / "lib", hashing_embedder, vectors=graph)
    add_spans(library, "bbb", [(0, 20, "умные светофоры в казани", "smart traffic lights in kazan"),
                               (20, 40, "защита персональных данных", "protection of personal data")], "ru")
    library.maintain()
    assert library.store.vectors.approximate and (tmp_path / "lib" / "vectors" / "coarse.faiss").exists()
    narrow = Library(tmp_path / "lib", HashingEmbedder("narrow", dimension=32), vectors=graph)
    narrow.reindex()
    narrow.maintain()
    reopened = Library(tmp_path / "lib", HashingEmbedder("narrow", dimension=32), vectors=graph)
    assert reopened.store.vectors.approximate and reopened.store.vectors.coarse_damage is None
    assert reopened.search("smart traffic lights")[0].recording_id == "bbb"


def test_a_failed_write_leaves_the_library_as_it_was(library, monkeypatch):
    """The last step of a write fails: the embedded store's commit of the new segment, or the
    PostgreSQL store's vector rows (the records are already inserted in its transaction)."""
    counts = library.store.counts()
    embedded = isinstance(library.location, Path)
    files = sorted(p.name for p in (library.location / "vectors").iterdir()) if embedded else []

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(*(library.store.catalog, "set_segments") if embedded else (library.store.vectors, "write"), broken)
    with pytest.raises(OSError):
        add_spans(library, "eee", [(0, 5, "doomed talk", None)])
    assert library.store.counts() == counts
    assert library.store.records.recording("eee") is None
    assert all(hit.recording_id != "eee" for hit in library.search("doomed talk", mode="lexical"))
    if embedded:
        assert sorted(p.name for p in (library.location / "vectors").iterdir()) == files  # the new segment is gone too


def test_a_clearly_weaker_overlapping_chunk_does_not_widen_the_hit():
    a = Chunk("r", 0, 20, "en", "One. Two.", None)
    b = Chunk("r", 15, 35, "en", "Two. Three.", None)
    assert [(m.start, m.end, s) for m, s in merge_overlapping([(a, 0.9), (b, 0.7)])] == [(0, 20, 0.9)]
