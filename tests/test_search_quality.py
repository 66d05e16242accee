"""Keyword analysis, hybrid fusion, exact quotes, filters and clip bounds — with the real
analysers (kiwipiepy, Snowball) and a small hashing embedder standing in for e5."""
import pytest

from index.lexical import Analyzer
from index.library import Library
from index.ranking import FusionSettings, SearchFilters, fuse
from index.vectors import ORIGINAL
from ingest.records import Chunk
from tests.helpers import add, said


@pytest.fixture
def library(tmp_path, hashing_embedder):
    lib = Library(tmp_path / "lib", hashing_embedder)
    add(lib, "ko1", said("ko", ["안녕하세요 여러분.", "오늘은 주민을 위한 디지털 플랫폼을 소개합니다.", "플랫폼에서 민원을 신청할 수 있습니다.",
                                "주차 정보도 제공합니다.", "감사합니다."]), speaker="김서연", event="Forum 2026", date="2026-03-19")
    add(lib, "ru1", said("ru", ["Добрый день.", "Умные светофоры сократили время ожидания.", "Камеры считают машины и пешеходов.",
                                "Общественный транспорт получает приоритет."]), speaker="Алексей Гарипов", event="Forum 2026", date="2026-03-18")
    add(lib, "en1", said("en", ["Good morning everyone.", "The operator installed twelve base stations on rooftops, lamp posts and bus shelters.",
                                "Speeds reached nine hundred megabits per second.", "Thank you."]), speaker="Daniel Whitmore", event="Expo", date="2025-11-02")
    return lib


def test_korean_particles_and_russian_inflection_are_analysed_away():
    analyzer = Analyzer()
    assert "플랫폼" in analyzer.keys("플랫폼을") and "플랫폼" in analyzer.keys("플랫폼에서")
    assert analyzer.keys("светофорами") == analyzer.keys("светофоры") == ("светофор",)
    assert analyzer.keys("the stations of Kazan") == ("station", "kazan")


def test_keyword_search_matches_across_particles_and_inflection(library):
    [korean, *_] = library.search("플랫폼에서", mode="lexical")
    assert korean.recording_id == "ko1"
    assert [korean.text[a:b] for a, b in korean.highlights] == ["플랫폼", "플랫폼"]
    [russian, *_] = library.search("светофорами", mode="lexical")
    assert russian.recording_id == "ru1" and "светофоры" in russian.text
    assert [russian.text[a:b] for a, b in russian.highlights] == ["светофоры"]


def test_hit_is_tightened_to_the_matching_sentence_on_word_boundaries(library):
    hit = library.search("주차 정보", mode="lexical")[0]
    assert hit.text == "주차 정보도 제공합니다."
    transcript = library.store.records.transcript("ko1")
    sentence = next(s for s in transcript.segments if s.text.startswith("주차"))
    assert (hit.start, hit.end) == (round(sentence.words[0].start, 2), round(sentence.words[-1].end, 2))


def test_exact_quote_finds_the_words_and_their_seconds(library):
    [hit] = library.search('"Base stations on ROOFTOPS"')
    words = library.store.records.transcript("en1").segments[1].words
    assert hit.recording_id == "en1" and hit.text == "base stations on rooftops,"
    assert (hit.start, hit.end) == (round(words[4].start, 2), round(words[7].end, 2))  # "base" … "rooftops,"
    assert not hit.approximate
    assert library.search('«Камеры считают машины»')[0].recording_id == "ru1"


def test_a_quote_recognition_misspelled_is_found_as_an_approximate_hit_on_its_words(library):
    add(library, "ru2", said("ru", ["Добрый вечер.", "В трёх районах начали разделные с бармусеров во дворах.", "Спасибо."]))
    [hit] = library.search('"раздельный сбор мусора"')
    words = library.store.records.transcript("ru2").segments[1].words
    assert hit.approximate and hit.recording_id == "ru2" and 0.72 <= hit.score < 1
    assert (hit.start, hit.end) == (round(words[4].start, 2), round(words[6].end, 2))  # "разделные" … "бармусеров"
    [misremembered] = library.search('"stations on the roof"')
    assert misremembered.approximate and misremembered.recording_id == "en1" and "stations on rooftops" in misremembered.text
    assert library.search('"квантовая хромодинамика адронов"') == []  # nothing spelled like it: no hit at all


def test_metadata_filters_and_editing(library):
    assert {h.recording_id for h in library.search("приоритет", filters=SearchFilters(speaker="алексей гарипов"))} == {"ru1"}
    assert {h.recording_id for h in library.search("talk", filters=SearchFilters(event="Forum 2026"))} <= {"ko1", "ru1"}
    assert {h.recording_id for h in library.search("stations", filters=SearchFilters(date_from="2026-01-01"))} <= {"ko1", "ru1"}
    assert {h.recording_id for h in library.search("stations", filters=SearchFilters(date_to="2025-12-31"))} == {"en1"}
    library.store.update("en1", {"event": "Forum 2026"})
    assert "en1" in {h.recording_id for h in library.search("stations", filters=SearchFilters(event="forum 2026"))}
    with pytest.raises(ValueError, match="cannot edit source"):
        library.store.update("en1", {"source": "/etc/passwd"})


def chunk(i: int) -> Chunk:
    return Chunk(f"r{i}", 0, 10, "en", f"text {i}", None, 0, i)


def test_fusion_adds_keyword_evidence_in_proportion_to_coverage():
    dense = [(chunk(1), 0.9), (chunk(2), 0.8), (chunk(3), 0.7)]
    lexical = [(chunk(3), 12.0, 1.0), (chunk(2), 11.0, 0.6), (chunk(5), 10.0, 0.2), (chunk(4), 2.0, 1.0)]
    fused = fuse(dense, lexical, FusionSettings(lexical_weight=1.0, floor=0.3, min_coverage=0.5))
    assert [c.id for c, _ in fused] == [3, 2, 1]          # keyword support lifts 3 and 2 over 1
    assert 4 not in [c.id for c, _ in fused]              # below the relative floor
    assert 5 not in [c.id for c, _ in fused]              # holds too few of the query terms
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 62 + 0.6 / 62)  # 2 holds 60 % of the query terms
    dense_only = fuse(dense, [], FusionSettings())
    assert [c.id for c, _ in dense_only] == [1, 2, 3]


def test_a_keyword_shared_across_scripts_does_not_lift_a_chunk():
    """An English query's Latin word inside a Korean cue (no rendering) says little about which
    mention is meant; through an English rendering, or from a Korean query, it counts in full."""
    korean = Chunk("ko", 0, 10, "ko", "CircuitPython 으로 시작했습니다", None, 0, 7)
    rendered = Chunk("ko", 20, 30, "ko", "CircuitPython 도 있습니다", "There is CircuitPython too", 1, 8)
    dense = [(chunk(1), 0.9), (korean, 0.8), (rendered, 0.7)]
    lexical = [(korean, 12.0, 1.0), (rendered, 11.0, 1.0)]
    english = fuse(dense, lexical, FusionSettings(), "en")
    assert [c.id for c, _ in english] == [8, 1, 7]
    assert dict((c.id, s) for c, s in english)[7] == pytest.approx(1 / 62)  # the vector ranking alone
    assert [c.id for c, _ in fuse(dense, lexical, FusionSettings(), "ko")] == [7, 8, 1]
    assert [c.id for c, _ in fuse(dense, lexical, FusionSettings(), "ru")] == [1, 7, 8]  # Cyrillic: neither
    assert [c.id for c, _ in fuse(dense, lexical, FusionSettings(foreign_weight=1.0), "en")] == [7, 8, 1]


def test_modes_differ_and_unknown_mode_is_refused(library):
    from index.library import LibraryError

    assert library.search("светофорами", mode="lexical")[0].recording_id == "ru1"
    with pytest.raises(LibraryError, match="unknown search mode"):
        library.search("x", mode="fuzzy")


def test_keyword_rows_follow_deletes_and_are_rebuilt_when_missing(library, tmp_path, hashing_embedder):
    store = library.store
    library.delete("ru1")
    assert library.search("светофорами", mode="lexical") == []
    assert store.catalog.unanalysed() == []
    # the keyword index is derived data: gone or out of step with the catalog, it is rebuilt at open
    store.keywords.remove([c.id for c in store.records.chunks_of("ko1")])
    assert library.search("플랫폼", mode="lexical") == []
    reopened = Library(tmp_path / "lib", hashing_embedder)
    assert reopened.search("플랫폼", mode="lexical")[0].recording_id == "ko1"


def test_a_corrected_language_reaches_the_keyword_filter(library):
    assert library.search("플랫폼", mode="lexical", filters=SearchFilters(language="ja")) == []
    library.store.update("ko1", {"language": "ja"})
    assert library.search("플랫폼", mode="lexical", filters=SearchFilters(language="ja"))[0].recording_id == "ko1"


def test_two_sentence_windows_locate_the_answer_inside_a_long_chunk(library, tmp_path):
    """A chunk of several sentences is also embedded as two-sentence windows; the best window's
    seconds come back with the chunk, and survive a reindex."""
    store = library.store
    chunk = store.records.chunks_of("ko1")[0]
    views, _ = store.vectors.views(chunk.id)
    assert set(views.tolist()) >= {ORIGINAL, 2, 4}       # whole chunk + windows
    query = library.centering.query("주차 정보도 제공합니다.")
    best = [(c, score, view) for c, score, view in store.vectors.search(query, 5) if c == chunk.id]
    assert best and best[0][2] >= 2
    [span] = store.records.window_spans([(chunk.id, best[0][2])]).values()
    parking = next(s for s in store.records.transcript("ko1").segments if s.text.startswith("주차"))
    assert span[0] <= parking.start and parking.end <= span[1] + 0.01
    total = sum(len(store.records.chunks_of(r.id)) for r in store.records.recordings())
    assert library.reindex() == total
    assert sorted(store.vectors.views(chunk.id)[0].tolist()) == sorted(views.tolist())


def test_english_stop_words_are_scikit_learns_list_without_importing_it():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from index.lexical import english_stop_words

    assert english_stop_words() == ENGLISH_STOP_WORDS


def test_query_language_by_script_without_loading_the_identifier_for_ascii():
    from index.centering import query_language

    assert [query_language(q) for q in ("smart traffic lights", "умные светофоры", "주민을 위한 플랫폼", "la société numérique")] \
        == ["en", "ru", "ko", "fr"]


def test_hits_whose_chunks_hold_no_query_term_are_not_analysed_for_highlights(library, monkeypatch):
    """Highlighting reads which query terms each hit's chunk holds (stored at ingest) and runs the
    analysers only over the hits that hold some: Kiwi never sees the Russian and English hits of
    a Korean query, and the Korean hit is still highlighted."""
    analysed: list[str] = []
    terms_many = Analyzer.terms_many
    monkeypatch.setattr(Analyzer, "terms_many", lambda self, texts, korean=True: analysed.extend(texts) or terms_many(self, texts, korean))
    hits = library.search("디지털 플랫폼", mode="hybrid")
    korean = next(h for h in hits if h.recording_id == "ko1")
    assert [korean.text[a:b] for a, b in korean.highlights] == ["디지털", "플랫폼", "플랫폼"]
    others = [h for h in hits if h.recording_id != "ko1"]
    assert others and all(h.highlights == [] for h in others)
    assert not {h.text for h in others} & set(analysed)


def test_highlights_are_placed_where_ingest_found_the_terms_and_analysed_only_where_it_did_not(tmp_path, library, hashing_embedder,
                                                                                              monkeypatch):
    """A Korean hit's highlights come from the places of its sentences' terms stored at ingest, so
    Kiwi does not analyse its words again; in a library stored before places were kept, only the
    sentences holding a query term are analysed, with the same highlights, until the library is
    opened again and the places are made."""
    analysed: list[str] = []
    terms_many = Analyzer.terms_many
    monkeypatch.setattr(Analyzer, "terms_many", lambda self, texts, korean=True: analysed.extend(texts) or terms_many(self, texts, korean))

    def korean_hit(library):
        analysed.clear()
        return next(h for h in library.search("디지털 플랫폼", mode="lexical") if h.recording_id == "ko1")

    placed = korean_hit(library)
    assert [placed.text[a:b] for a, b in placed.highlights] == ["디지털", "플랫폼", "플랫폼"]
    assert not [text for text in analysed if "주민" in text or "민원" in text]
    with library.store.catalog.transaction():
        library.store.catalog._rows("UPDATE sentence_terms SET places = NULL")
    assert korean_hit(library).highlights == placed.highlights
    assert [text for text in analysed if "주민" in text] and not [text for text in analysed if "안녕하세요" in text or "주차" in text]
    reopened = Library(tmp_path / "lib", hashing_embedder)
    assert reopened.store.catalog._rows("SELECT COUNT(*) FROM sentence_terms WHERE places IS NULL")[0][0] == 0
    assert korean_hit(reopened).highlights == placed.highlights
    assert not [text for text in analysed if "주민" in text or "민원" in text]


def test_a_sentence_cut_differently_takes_the_terms_of_the_stored_sentences_that_make_it():
    from index.catalog import StoredSentence
    from index.clips import _stored_terms
    from ingest.chunking import Sentence

    stored = {span: StoredSentence({term}, None) for span, term in [((10.0, 13.27), "주차"), ((14.0, 17.33), "정보"), ((18.0, 41.33), "제공")]}
    assert _stored_terms(stored, Sentence(14.0, 17.33, "", "ko")) == {"정보"}
    assert _stored_terms(stored, Sentence(10.0, 41.33, "", "ko")) == {"주차", "정보", "제공"}  # a run-on split at another pause
    assert _stored_terms(stored, Sentence(14.0, 41.334, "", "ko")) == {"정보", "제공"}
    assert _stored_terms(stored, Sentence(12.0, 17.33, "", "ko")) is None  # starts inside a stored sentence: analysed afresh
    assert _stored_terms(stored, Sentence(10.0, 20.0, "", "ko")) is None


def test_a_sentence_made_of_two_stored_ones_is_highlighted_from_their_places():
    """A run-on sentence split at ingest and whole in a hit (its split depends on where the passage
    starts) takes the places of its stored parts, each found in the hit's words; one stored
    without places leaves it to be analysed."""
    from index.catalog import StoredSentence
    from index.clips import _placed
    from ingest.chunking import Sentence

    analyzer = Analyzer()
    talk = said("ko", ["주민을 위한", "디지털 플랫폼입니다"])
    first, second = talk.segments
    parts = [((s.start, s.end), StoredSentence({t.text for t in terms}, terms))
             for s in (first, second) for terms in [analyzer.terms(s.text)]]
    unit = Sentence(first.start, second.end, "주민을 위한 디지털 플랫폼입니다", "ko")
    text = "안녕하세요 " + unit.text
    placed = _placed(unit, text.index(unit.text), parts, text, talk, {"주민", "플랫폼"})
    assert [text[a:b] for a, b in placed] == ["주민", "플랫폼"]
    assert _placed(unit, 6, [parts[0], (parts[1][0], StoredSentence(parts[1][1].terms, None))], text, talk, {"주민"}) is None


def test_a_hit_folded_from_two_chunks_is_highlighted_where_only_the_second_holds_the_term(tmp_path, hashing_embedder):
    from index.clips import ClipShaper
    from index.retrieval import top

    library = Library(tmp_path / "lib", hashing_embedder)
    talk = said("en", ["The mayor opened the new bridge.", "It took four years to build.", "Smart traffic lights came next."])
    first, second, third = talk.segments
    add(library, "r1", talk, [Chunk("r1", first.start, second.end, "en", f"{first.text} {second.text}", None, 0),
                              Chunk("r1", second.start, third.end, "en", f"{second.text} {third.text}", None, 1)])
    a, b = library.store.records.chunks_of("r1")
    [(merged, _, _)] = top([(b, 0.800, None), (a, 0.7995, None)], 10)  # within a tie: one hit
    assert merged.id == a.id and (merged.start, merged.end) == (a.start, b.end)
    [hit] = ClipShaper(library.store).shape([(merged, 0.8, None)], "traffic", None)
    assert [hit.text[x:y] for x, y in hit.highlights] == ["traffic"]


def test_a_latin_word_written_onto_a_korean_particle_is_the_same_term_as_written_apart():
    """Korean talks write English names and terms onto particles ("devices를"); Kiwi splits them
    off, and they are stemmed and stop-listed as English words are, so a query meets them."""
    analyzer = Analyzer()
    assert analyzer.keys("devices를 봅니다") == ("devic", "보")
    assert "makecod" in analyzer.keys("마이크로소프트 MakeCode라는 게 있습니다") and analyzer.keys("MakeCode") == ("makecod",)
    assert analyzer.keys("A팀과") == ("팀",)  # a lone letter is no term, as in English text


def test_latin_words_inside_korean_ones_are_highlighted(tmp_path, hashing_embedder):
    library = Library(tmp_path / "lib", hashing_embedder)
    add(library, "k1", said("ko", ["우리는 AI를 소개합니다.", "오늘 날씨가 좋습니다."]))
    [hit] = [h for h in library.search("AI 플랫폼", mode="lexical") if "AI" in h.text]
    assert [hit.text[x:y] for x, y in hit.highlights] == ["AI"]


def test_concurrent_searches_embed_their_queries_at_the_same_time():
    """Each search's query vector is made in its own thread without a lock shared by all
    searches (``functools.cached_property`` held one before Python 3.12)."""
    import threading

    import numpy as np

    from index.retrieval import Candidates

    both = threading.Barrier(2, timeout=10)  # passed only while two embeddings are under way at once

    def embed(text: str) -> np.ndarray:
        both.wait()
        return np.ones(4, dtype=np.float32)

    made = []
    searches = [threading.Thread(target=lambda: made.append(Candidates("q", embed, SearchFilters(), 10).vector)) for _ in range(2)]
    for search in searches:
        search.start()
    for search in searches:
        search.join()
    assert len(made) == 2 and not both.broken


def test_sentences_sharing_as_many_query_terms_are_told_apart_by_meaning(tmp_path, hashing_embedder):
    """Both the first and the third sentence hold the query's one term («CoC», a loanword in a
    Korean talk); the third is the one that means the query, and is what the hit plays."""
    library = Library(tmp_path / "lib", hashing_embedder)
    add(library, "c1", said("en", ["The CoC is a short document.", "Printed copies hung at every door.",
                                   "So were we all, with the CoC in hand."]))
    assert len(library.store.records.chunks_of("c1")) == 1
    [hit, *_] = library.search("were we all with the CoC")
    assert hit.text == "So were we all, with the CoC in hand."
    # Further down the list sentences are not read by meaning: the view that matched decides.
    from index.clips import ClipShaper

    shaper = ClipShaper(library.store)
    [chunk] = library.store.records.chunks_of("c1")
    units = shaper.sentences(chunk, shaper.passage(chunk))
    third = (units[2].start, units[2].end)
    assert shaper.focus(chunk, units, [1, 0, 1], third, None, rank=5) == third
    assert shaper.focus(chunk, units, [1, 0, 1], None, None, rank=5) == (units[0].start, units[0].end)
