"""Long recordings: read in windows cut at pauses, transcribed on the recording's clock, and
refused when longer than the configured maximum (before decoding when the header says so)."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from benchmarks.speech import write_flac
from core.errors import MediaError
from ingest.align import overlap
from ingest.media import SAMPLE_RATE, AudioSource, load_audio
from tests.helpers import DEMO


def declare_duration(path, seconds: float) -> None:
    """Rewrite the total-samples field (36 bits) of a FLAC file's STREAMINFO block."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
    field = int.from_bytes(data[18:26], "big")
    field = field & ~((1 << 36) - 1) | int(seconds * SAMPLE_RATE)
    data[18:26] = field.to_bytes(8, "big")
    path.write_bytes(bytes(data))


def tone(seconds: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE)).astype(np.float32)


def test_a_small_file_declaring_ten_hours_is_refused_before_decoding(tmp_path):
    path = tmp_path / "ten_hours.flac"
    write_flac(path, tone(5))
    declare_duration(path, 10 * 3600)
    started = time.perf_counter()
    with pytest.raises(MediaError, match=r"ten_hours\.flac: declares 10:00:00 of audio, over the 4:00:00 limit"):
        AudioSource(path)
    with pytest.raises(MediaError, match="over the 4:00:00 limit"):
        load_audio(path)
    assert time.perf_counter() - started < 1.0
    assert AudioSource(path, max_seconds=11 * 3600).declared == pytest.approx(36_000)


def test_a_file_holding_more_than_it_declares_is_refused_while_decoding(tmp_path):
    path = tmp_path / "lies.flac"
    write_flac(path, tone(10))
    declare_duration(path, 1)
    source = AudioSource(path, max_seconds=5)
    assert source.declared == pytest.approx(1.0)
    with pytest.raises(MediaError, match=r"lies\.flac: decodes to more than the 0:00:05 limit"):
        list(source.blocks())
    assert load_audio(path).size == 10 * SAMPLE_RATE


def test_windows_cover_the_file_and_are_cut_in_pauses(tmp_path):
    talk = load_audio(DEMO / "en_5g_pilots.opus")
    path = tmp_path / "tiled.flac"
    write_flac(path, np.tile(talk, 4))
    whole = load_audio(path)
    windows = list(AudioSource(path).windows(50.0))
    assert len(windows) >= 3
    assert np.array_equal(np.concatenate([samples for _, samples in windows]), whole)
    offsets = [offset for offset, _ in windows]
    assert offsets == [sum(s.size for _, s in windows[:i]) / SAMPLE_RATE for i in range(len(windows))]
    loud = np.sqrt(np.mean(np.square(whole)))
    for offset in offsets[1:]:
        at = int(offset * SAMPLE_RATE)
        around = whole[at - SAMPLE_RATE // 10: at + SAMPLE_RATE // 10]
        assert np.sqrt(np.mean(np.square(around))) < 0.1 * loud, f"cut at {offset:.2f} s is not in a pause"


def test_windowed_transcription_stays_on_the_recording_clock(tmp_path, demo_talks, models, monkeypatch):
    """A 4-minute file read in 1-minute windows: the talk's keyword is found in every
    repetition, later windows included, at the time the script says it was spoken."""
    talk = demo_talks["en-5g-pilots"]
    audio = load_audio(DEMO / talk["file"])
    pause = np.zeros(SAMPLE_RATE, dtype=np.float32)
    period = (audio.size + pause.size) / SAMPLE_RATE
    repeats = 6
    path = tmp_path / "long_talk.flac"
    write_flac(path, np.tile(np.concatenate([audio, pause]), repeats))
    transcriber = models.transcriber
    monkeypatch.setattr(transcriber, "settings", replace(transcriber.settings, window_minutes=1.0))
    progress: list[float] = []
    transcript = transcriber(AudioSource(path), progress=progress.append)

    assert transcript.language == "en" and transcript.duration == pytest.approx(repeats * period, abs=0.05)
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts) and transcript.segments[-1].end <= transcript.duration + 0.5
    for segment in transcript.segments:
        assert segment.words and all(segment.start - 0.5 <= w.start <= w.end <= segment.end + 0.5 for w in segment.words)
    assert progress == sorted(progress) and progress[-1] == 1.0

    start, end = talk["sentence_times"][2]  # "... twelve base stations on rooftops ..."
    for k in range(repeats):
        said = (k * period + start, k * period + end)
        found = [s for s in transcript.segments if "rooftop" in s.text.lower() or "base station" in s.text.lower()]
        assert any(overlap(s.start, s.end, *said) > 0.5 * (said[1] - said[0]) for s in found), (k, said)
