"""End to end with the real models on real (synthesised) speech: the shipped demo talks go
through whisper (transcribe + translate), chunking, e5 embeddings and FAISS, then get searched."""
from __future__ import annotations

import pytest

from index.library import SearchRequest
from index.ranking import SearchFilters
from ingest.align import overlap

KEYWORDS = {  # words whisper must hear (lower-case stems; synthetic voices, so a little slack)
    "en-5g-pilots": ["pilot", "district", "base stations"],
    "en-ai-urban-services": ["water pipe", "waste collection", "artificial intelligence"],
    "en-open-data-portal": ["open data", "platform", "residents"],
    "ru-smart-traffic-lights": ["перекрест", "казан", "общественный транспорт"],
    "ru-cybersecurity": ["персональных данных", "датчик", "систем"],
}
ENGLISH_RENDERING = {"ru-smart-traffic-lights": ["pedestrian", "public transport", "green"],
                     "ru-cybersecurity": ["personal data", "cyber", "system"]}


def recording_of(app, talk):
    return next(r for r in app.recordings() if r.title == talk["title"])


@pytest.mark.parametrize("talk_id", sorted(KEYWORDS))
def test_language_and_keywords(demo_app, demo_talks, talk_id):
    recording, transcript = demo_app.recording(recording_of(demo_app, demo_talks[talk_id]).id)
    assert recording.language == demo_talks[talk_id]["language"]
    assert {s.language for s in transcript.segments} == {recording.language}
    text = " ".join(s.text for s in transcript.segments).lower()
    heard = [k for k in KEYWORDS[talk_id] if k in text]
    assert len(heard) >= 2, f"only {heard} of {KEYWORDS[talk_id]} in: {text}"


@pytest.mark.parametrize("talk_id", sorted(KEYWORDS))
def test_timestamps_match_the_spoken_sentences(demo_app, demo_talks, talk_id):
    talk = demo_talks[talk_id]
    spans = talk["sentence_times"]
    _, transcript = demo_app.recording(recording_of(demo_app, talk).id)
    # every segment lies over speech, and together they cover the talk from first to last sentence
    for segment in transcript.segments:
        assert any(overlap(segment.start, segment.end, s, e) > 0 for s, e in spans), segment
    assert transcript.segments[0].start == pytest.approx(spans[0][0], abs=1.0)
    assert transcript.segments[-1].end == pytest.approx(spans[-1][1], abs=1.5)
    # word timings: each sentence's first word starts near where that sentence was spoken
    words = [w for s in transcript.segments for w in s.words]
    for start, end in spans:
        inside = [w for w in words if start <= (w.start + w.end) / 2 <= end]
        assert inside, f"no words recognised in {start}-{end}"
        assert inside[0].start == pytest.approx(start, abs=1.0)


@pytest.mark.parametrize("talk_id", sorted(KEYWORDS))
def test_english_rendering_only_for_non_english_speech(demo_app, demo_talks, talk_id):
    _, transcript = demo_app.recording(recording_of(demo_app, demo_talks[talk_id]).id)
    if talk_id.startswith("en-"):
        assert transcript.translation == []
        assert all(s.translation is None for s in transcript.segments)
        return
    english = " ".join(s.text for s in transcript.translation).lower()
    assert sum(k in english for k in ENGLISH_RENDERING[talk_id]) >= 1, english
    # pieces are on the recording's clock
    assert transcript.translation[-1].end <= transcript.segments[-1].end + 2.0


def test_imported_korean_transcript_keeps_cue_times_and_english(demo_app, demo_talks):
    talk = demo_talks["ko-digital-platform"]
    recording, transcript = demo_app.recording(recording_of(demo_app, talk).id)
    assert recording.language == "ko" and not recording.has_media
    assert [s.text for s in transcript.segments] == talk["sentences"]
    assert [[s.start, s.end] for s in transcript.segments] == talk["sentence_times"]
    assert transcript.segments[0].translation == talk["translation"][0]


# Each query lists every sentence of the script that says what it asks: Whisper's words differ
# between machines, so which of two sentences saying "умные светофоры" ranks first may too.
@pytest.mark.parametrize("query,talk_id,said_in", [
    ("5G pilots", "en-5g-pilots", [1, 5]),                                        # same language
    ("predicting water pipe failures", "en-ai-urban-services", [1]),
    ("умные светофоры", "ru-smart-traffic-lights", [0, 6]),
    ("주민을 위한 디지털 플랫폼", "ko-digital-platform", [0]),
    ("주차 정보", "ko-digital-platform", [2]),
    ("smart traffic lights at intersections", "ru-smart-traffic-lights", [0, 3, 6]),   # cross-lingual
    ("protecting residents' personal data", "ru-cybersecurity", [4, 5]),
])
def test_search_ranks_the_right_clip_first(demo_app, demo_talks, query, talk_id, said_in):
    talk = demo_talks[talk_id]
    hits = demo_app.search(SearchRequest(query, 5))
    best = hits[0]
    assert best.title == talk["title"], [(h.title, h.score) for h in hits]
    spans = [talk["sentence_times"][i] for i in said_in]
    assert any(overlap(best.start, best.end, start, end) > 0 for start, end in spans), (best.start, best.end, spans)
    assert best.end - best.start <= 45


def test_hits_follow_the_contract(demo_app):
    hits = demo_app.search(SearchRequest("adaptive signals at crossroads", 3))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert isinstance(hit.start, float) and isinstance(hit.end, float) and hit.start < hit.end
        assert hit.text and hit.language in {"en", "ru", "ko"}
        assert (hit.translation is None) == (hit.language == "en")


def test_language_filter(demo_app):
    hits = demo_app.search(SearchRequest("city data", 10, filters=SearchFilters(language="ru")))
    assert hits and {h.language for h in hits} == {"ru"}
