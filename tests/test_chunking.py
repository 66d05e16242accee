from ingest.chunking import ChunkingSettings, chunk_transcript, sentences
from ingest.records import Segment, Transcript, Word


def spoken(sentence_count: int, words_per_sentence: int = 4, word_seconds: float = 0.6, pause: float = 1.0,
           start: float = 0.0, language: str = "en") -> Segment:
    """A segment of numbered sentences with regular word timings."""
    words, t = [], start
    for s in range(sentence_count):
        for w in range(words_per_sentence):
            end_mark = "." if w == words_per_sentence - 1 else ""
            words.append(Word(t, t + 0.5, f" s{s}w{w}{end_mark}"))
            t += word_seconds
        t += pause
    return Segment(start, t, "".join(w.text for w in words).strip(), language, words)


def test_chunks_stay_within_bounds_and_overlap_by_one_sentence():
    segment = spoken(40)
    chunks = chunk_transcript(Transcript("en", segment.end, [segment]), "rec")
    assert len(chunks) > 3
    for chunk in chunks[:-1]:
        assert 15.0 <= chunk.end - chunk.start <= 40.0
    for before, after in zip(chunks, chunks[1:]):
        last_sentence = before.text.split(". ")[-1]
        assert after.text.startswith(last_sentence.rstrip(".")), "next chunk repeats the previous last sentence"
        assert after.start < before.end


def test_every_word_appears_whole_and_in_order():
    segment = spoken(25)
    chunks = chunk_transcript(Transcript("en", segment.end, [segment]), "rec", ChunkingSettings(overlap_sentences=0))
    joined = " ".join(chunk.text for chunk in chunks).split()
    assert joined == [w.text.strip() for w in segment.words]


def test_language_switch_starts_a_new_chunk():
    korean = spoken(3, start=0.0, language="ko")
    english = spoken(3, start=korean.end, language="en")
    chunks = chunk_transcript(Transcript("ko", english.end, [korean, english]), "rec")
    assert [c.language for c in chunks] == ["ko", "en"]
    assert chunks[0].end <= chunks[1].start


def test_run_on_sentence_is_split_at_its_widest_pause():
    words = [Word(i * 0.5, i * 0.5 + 0.4, f" w{i}") for i in range(60)]
    words += [Word(40.0 + i * 0.5, 40.4 + i * 0.5, f" v{i}") for i in range(60)]
    units = sentences([Segment(0, 70, "", "en", words)], max_seconds=40.0)
    assert len(units) == 2
    assert units[0].text.endswith("w59") and units[1].text.startswith("v0")


def test_subtitle_cues_without_words_are_kept_whole_and_translated():
    cues = [Segment(i * 5.0, i * 5.0 + 4.0, f"문장 {i}입니다.", "ko") for i in range(10)]
    english = [Segment(i * 5.0, i * 5.0 + 4.0, f"Sentence {i}.", "en") for i in range(10)]
    chunks = chunk_transcript(Transcript("ko", 50.0, cues, english), "rec")
    assert chunks[0].text.startswith("문장 0입니다.")
    assert chunks[0].translation.startswith("Sentence 0.")
    assert all(c.translation for c in chunks)


def test_english_chunks_carry_no_translation():
    segment = spoken(5)
    chunks = chunk_transcript(Transcript("en", segment.end, [segment], [Segment(0, 5, "ignored", "en")]), "rec")
    assert all(c.translation is None for c in chunks)


def test_a_sentence_runs_on_across_segment_boundaries_but_not_across_long_pauses():
    first = Segment(0, 2, "the cameras count", "en", [Word(0, 0.5, " the"), Word(0.6, 1.0, " cameras"), Word(1.1, 2.0, " count")])
    second = Segment(2.1, 4, "cars.", "en", [Word(2.1, 3.0, " cars.")])
    later = Segment(9, 10, "Later", "en", [Word(9, 10, " Later")])
    units = sentences([first, second, later], max_seconds=40)
    assert [(u.start, u.end, u.text) for u in units] == [(0, 3.0, "the cameras count cars."), (9, 10, "Later")]
