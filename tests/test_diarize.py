"""Speaker diarization: the pieces on small hand-made inputs, then the real resemblyzer encoder
on real voices from the shared fixtures."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.diarization import Voice, _pieces, _trimmed, build, der, matched_voices
from index.library import SearchRequest
from index.ranking import SearchFilters
from ingest.diarize import (Diarization, DiarizationSettings, ResemblyzerDiarizer, Turn, assign, cluster, suggest,
                            turns, windows)
from ingest.media import load_audio
from ingest.records import Segment, Transcript, Word
from tests.helpers import FIXTURES, needs_fixtures


def test_windows_are_between_the_bounds():
    found = windows([(0.0, 1.0), (2.0, 9.5), (10.0, 13.2)], 1.5, 3.0)
    assert found[0] == (0.0, 1.0)  # a short span stays whole
    lengths = [b - a for a, b in found[1:]]
    assert all(1.5 <= n <= 3.0 for n in lengths)
    assert found[1][0] == 2.0 and found[-1][1] == 13.2


def test_clustering_finds_two_voices_and_folds_a_stray_window():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=256), rng.normal(size=256)
    stray = rng.normal(size=256)
    vectors = np.stack([a + 0.1 * rng.normal(size=256) for _ in range(6)] + [b + 0.1 * rng.normal(size=256) for _ in range(6)] + [stray])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    seconds = np.full(len(vectors), 2.0)
    labels = cluster(vectors, seconds, None, DiarizationSettings())
    assert labels[:6].tolist() == [0] * 6 and labels[6:12].tolist() == [1] * 6
    assert labels[12] in (0, 1)  # 2 s of speech is no speaker of its own
    assert cluster(vectors, seconds, 3, DiarizationSettings()).max() == 2


def test_turns_absorb_short_flips_and_bridge_pauses():
    spans = [(0, 2), (2, 4), (4.5, 5.2), (5.2, 7), (8, 10), (10.2, 12)]
    found = turns(spans, np.array([0, 0, 1, 0, 1, 1]), DiarizationSettings())
    assert [(t.start, t.end, t.speaker) for t in found] == [(0, 7, "SPEAKER_1"), (8, 12, "SPEAKER_2")]


def _words(start: float, texts: str, step: float = 0.4) -> list[Word]:
    return [Word(start + i * step, start + i * step + 0.3, f" {w}") for i, w in enumerate(texts.split())]


def test_assign_splits_a_segment_at_a_speaker_change_and_ignores_a_short_flip():
    first = _words(0.0, "so that is my answer thank you")  # 0.0-2.7
    second = _words(3.0, "thanks my question is about budgets")  # 3.0-5.3
    transcript = Transcript("en", 6.0, [Segment(0.0, 5.3, "...", "en", first + second),
                                        Segment(5.5, 6.0, "Cue", "en")])
    diarization = Diarization([Turn(0.0, 1.1, "SPEAKER_1"), Turn(1.1, 1.6, "SPEAKER_2"), Turn(1.6, 2.9, "SPEAKER_1"),
                               Turn(2.9, 6.0, "SPEAKER_2")])
    assign(transcript, diarization)
    assert [(s.text, s.speaker) for s in transcript.segments] == [
        ("so that is my answer thank you", "SPEAKER_1"),
        ("thanks my question is about budgets", "SPEAKER_2"),
        ("Cue", "SPEAKER_2")]
    assert transcript.segments[0].start == 0.0 and transcript.segments[1].start == 3.0
    assert transcript.segments[1].end == 5.3


def test_a_voice_close_to_a_named_one_gets_its_name_suggested():
    registry = {"Elena": np.array([1.0, 0.0]), "Boris": np.array([0.0, 1.0])}
    near_elena = np.array([0.95, 0.31]) / np.linalg.norm([0.95, 0.31])
    halfway = np.array([1.0, 1.0]) / np.sqrt(2)
    assert suggest(registry, {"SPEAKER_1": near_elena, "SPEAKER_2": halfway}) == {"SPEAKER_1": "Elena"}
    assert suggest({}, {"SPEAKER_1": near_elena}) == {}


def test_der_counts_miss_false_alarm_and_confusion_under_the_best_mapping():
    truth = [Turn(0, 10, "a"), Turn(10, 20, "b")]
    assert der(truth, [Turn(0, 10, "X"), Turn(10, 20, "Y")]) == 0.0
    assert der(truth, [Turn(0, 10, "Y"), Turn(10, 20, "X")]) == 0.0  # names do not matter
    assert der(truth, []) == 1.0
    assert der(truth, [Turn(0, 20, "X")]) == pytest.approx(0.5, abs=0.02)  # half confused
    assert der(truth, [Turn(0, 10.2, "X"), Turn(10.2, 20, "Y")]) == 0.0  # inside the collar


@pytest.fixture(scope="module")
def diarizer(models) -> ResemblyzerDiarizer:
    return models.diarizer


@pytest.fixture(scope="module")
def real_voices() -> list[Voice]:
    zeroth = sorted((FIXTURES / "ko" / "zeroth").glob("*.flac"))
    return [Voice("zeroth-reader", True, [_trimmed(load_audio(p)) for p in zeroth]),
            Voice("allison-smith", True, _pieces(load_audio(FIXTURES / "en" / "en_asterisk_conf.flac"))),
            Voice("maxim-topal", True, _pieces(load_audio(FIXTURES / "ru" / "ru_asterisk_conf.flac")))]


@needs_fixtures("ko/zeroth", "en/en_asterisk_conf.flac", "ru/ru_asterisk_conf.flac")
def test_real_voices_interleaved_are_told_apart(diarizer, real_voices):
    rng = np.random.default_rng(7)
    for count in (2, 3):
        case = build(real_voices, count, True, rng, "interleaved")
        found = diarizer(case.audio)
        assert len(found.speakers) == count
        assert der(case.truth, found.turns) <= 0.15
        assert set(found.voices) == set(found.speakers)
        assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in found.voices.values())


@needs_fixtures("ko/zeroth")
def test_one_speaker_gets_one_label(diarizer, real_voices):
    audio = np.concatenate([np.concatenate([u, np.zeros(8000, np.float32)]) for u in real_voices[0].utterances[:8]])
    found = diarizer(audio)
    assert found.speakers == ["SPEAKER_1"]
    assert found.turns[0].start < 1.0 and found.turns[-1].end > audio.size / 16000 - 1.0


@needs_fixtures("ko/zeroth", "en/en_asterisk_conf.flac", "ru/ru_asterisk_conf.flac")
def test_a_given_number_of_speakers_is_kept(diarizer, real_voices):
    case = build(real_voices, 3, False, np.random.default_rng(3), "concatenated")
    found = diarizer(case.audio, speakers=3)
    assert len(found.speakers) == 3
    assert der(case.truth, found.turns) <= 0.15
    assert diarizer(case.audio, speakers=1).speakers == ["SPEAKER_1"]


@needs_fixtures("ko/zeroth", "en/en_asterisk_conf.flac", "ru/ru_asterisk_conf.flac")
def test_a_named_voice_is_recognised_in_another_recording(diarizer, real_voices):
    rng = np.random.default_rng(11)
    first = build(real_voices[:2], 2, True, rng, "zeroth and allison")
    second = build([real_voices[0], real_voices[2]], 2, True, rng, "zeroth and maxim")
    registry = {"Zeroth Reader": dict(matched_voices(first.truth, diarizer(first.audio)))["zeroth-reader"]}
    later = dict(matched_voices(second.truth, diarizer(second.audio)))
    assert suggest(registry, {"SPEAKER_1": later["zeroth-reader"]}) == {"SPEAKER_1": "Zeroth Reader"}
    assert suggest(registry, {"SPEAKER_2": later["maxim-topal"]}) == {}


@needs_fixtures("en/en_asterisk_conf.flac")
def test_ingest_of_a_two_voice_talk_labels_segments_chunks_and_hits(real_app, tmp_path):
    """Real whisper and encoder: a recorded voice and a synthetic one take turns (A B A)."""
    import shutil
    import subprocess

    import soundfile as sf

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    allison = _pieces(load_audio(FIXTURES / "en" / "en_asterisk_conf.flac"))
    robot = tmp_path / "robot.wav"
    subprocess.run(["espeak-ng", "-v", "en+m3", "-s", "150", "-w", str(robot),
                    "Our pilot project connects twelve schools to the fibre network by next spring. "
                    "The library now lends electric bicycles to anyone with a city card."], check=True)
    pause = np.zeros(12000, dtype=np.float32)
    parts = [allison[0], pause, allison[1], pause, _trimmed(load_audio(robot)), pause, allison[2], pause, allison[3]]
    bounds = np.cumsum([0] + [p.size for p in parts]) / 16000
    robot_turn = (bounds[4], bounds[5])
    talk = tmp_path / "two_voices.wav"
    sf.write(talk, np.concatenate(parts) * 0.8, 16000)
    outcome = real_app.ingest(talk)
    rid = outcome.recording.id
    voices = real_app.speakers(rid)[1]
    assert len(voices) == 2
    _, transcript = real_app.recording(rid)
    for segment in transcript.segments:  # no segment mixes the two voices
        inside = min(segment.end, robot_turn[1]) - max(segment.start, robot_turn[0])
        assert inside <= 0.5 or inside >= segment.end - segment.start - 0.5
    robot_label = {s.speaker for s in transcript.segments if s.start >= robot_turn[0] - 0.3 and s.end <= robot_turn[1] + 0.3}
    assert len(robot_label) == 1 and robot_label != {s.speaker for s in transcript.segments if s.end < robot_turn[0]}
    real_app.rename_speaker(rid, robot_label.pop(), "Robo Reader")
    hits = real_app.search(SearchRequest("electric bicycles city card", 5, filters=SearchFilters(recordings=[rid], speaker="robo reader")))
    assert hits and all(h.speaker == "Robo Reader" for h in hits)
    assert any("bicycle" in h.text.lower() for h in hits)
