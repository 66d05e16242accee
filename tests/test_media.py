import wave

import numpy as np
import pytest

from ingest.errors import MediaError
from ingest.media import SAMPLE_RATE, encode_clip, load_audio
from tests.conftest import DEMO


def write_wav(path, samples: np.ndarray, rate: int = SAMPLE_RATE):
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


def test_compressed_demo_audio_decodes_to_16k_mono():
    audio = load_audio(DEMO / "en_5g_pilots.opus")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 35 < audio.size / SAMPLE_RATE < 45


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        load_audio(tmp_path / "nope.mp3")


def test_garbage_bytes_are_not_audio(tmp_path):
    path = tmp_path / "fake.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="fake.mp3"):
        load_audio(path)


def test_text_file_with_media_suffix(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(MediaError, match="notes.wav"):
        load_audio(path)


def test_silence_is_refused(tmp_path):
    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(SAMPLE_RATE * 3))
    with pytest.raises(MediaError, match="silent"):
        load_audio(path)


@pytest.mark.parametrize("fmt", ["ogg", "mp3", "wav"])
def test_clip_is_exactly_the_requested_span(tmp_path, fmt):
    clip = tmp_path / f"clip.{fmt}"
    clip.write_bytes(encode_clip(DEMO / "en_5g_pilots.opus", 4.72, 9.37, fmt))
    assert load_audio(clip).size / SAMPLE_RATE == pytest.approx(4.65, abs=0.03)


def test_clip_outside_the_recording_or_backwards(tmp_path):
    with pytest.raises(MediaError, match="outside"):
        encode_clip(DEMO / "en_5g_pilots.opus", 500, 510)
    with pytest.raises(MediaError, match="after its start"):
        encode_clip(DEMO / "en_5g_pilots.opus", 5, 4)
    with pytest.raises(MediaError, match="unsupported clip format"):
        encode_clip(DEMO / "en_5g_pilots.opus", 1, 2, "flac")


def test_span_decoding_after_a_seek_matches_the_full_decode():
    """Clips decode only their span (seeking first); the samples must be the same ones."""
    from faster_whisper.audio import decode_audio

    from ingest.media import decode_span

    path = DEMO / "ru_cybersecurity.opus"
    full = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    for start, end in [(0.4, 2.0), (17.3, 21.9), (33.0, 38.5)]:
        part = decode_span(path, start, end)
        reference = full[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
        assert abs(part.size - reference.size) <= 1
        n = min(part.size, reference.size)
        assert np.corrcoef(part[:n], reference[:n])[0, 1] > 0.99
