import re
from pathlib import Path

import av
import numpy as np
import pytest

from core.errors import MediaError
from ingest.media import MEDIA_SUFFIXES, SAMPLE_RATE, AudioSource, decode_span, encode_clip, load_audio, probe
from tests.helpers import DEMO, write_wav


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


# -- what is opened at all ---------------------------------------------------------------------------
# Each suffix talksearch accepts, written by PyAV with a codec such files usually hold: all must open.
WRITTEN_AS = {
    ".wav": ("wav", "pcm_s16le", 16_000), ".flac": ("flac", "flac", 16_000), ".mp3": ("mp3", "libmp3lame", 44_100),
    ".ogg": ("ogg", "libopus", 48_000), ".oga": ("ogg", "libopus", 48_000), ".opus": ("opus", "libopus", 48_000),
    ".aac": ("adts", "aac", 44_100), ".wma": ("asf", "wmav2", 44_100), ".m4a": ("ipod", "aac", 44_100),
    ".mp4": ("mp4", "aac", 44_100), ".m4v": ("mp4", "aac", 44_100), ".mov": ("mov", "aac", 44_100),
    ".3gp": ("3gp", "aac", 44_100), ".mkv": ("matroska", "libopus", 48_000), ".webm": ("webm", "libopus", 48_000),
    ".avi": ("avi", "libmp3lame", 44_100), ".mpeg": ("mpeg", "mp2", 44_100), ".mpg": ("mpeg", "mp2", 44_100),
    ".ts": ("mpegts", "aac", 44_100), ".amr": ("amr", "libopencore_amrnb", 8_000),
}
NOT_MEDIA = "not an audio or video file talksearch reads"


def write_tone(path, muxer: str, codec: str, rate: int) -> None:
    """One second of a 440 Hz tone; PyAV converts the frame to what the encoder takes."""
    samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 32767).astype(np.int16)
    with av.open(str(path), "w", format=muxer) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = 64_000
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def test_every_accepted_suffix_has_its_demuxer_allowed(tmp_path):
    assert set(WRITTEN_AS) == MEDIA_SUFFIXES
    for suffix, (muxer, codec, rate) in WRITTEN_AS.items():
        path = tmp_path / f"tone{suffix}"
        write_tone(path, muxer, codec, rate)
        assert probe(path) == pytest.approx(1.0, abs=0.25), suffix
        assert load_audio(path).size == pytest.approx(SAMPLE_RATE, abs=0.25 * SAMPLE_RATE), suffix


def test_real_speech_is_accepted():
    assert probe(DEMO / "en_5g_pilots.opus") == pytest.approx(39, abs=1)


def test_a_concat_script_named_wav_is_refused_before_it_reads_other_files(tmp_path):
    """FFmpeg's concat demuxer would decode the listed files as one recording (a 401-byte upload
    decoded 779 s gathered from the media folder)."""
    (tmp_path / "other.opus").write_bytes((DEMO / "en_5g_pilots.opus").read_bytes())
    script = tmp_path / "talk.wav"
    script.write_text("ffconcat version 1.0\n" + "file other.opus\n" * 20)
    for read in (probe, AudioSource, load_audio, lambda path: decode_span(path, 0, 1), lambda path: encode_clip(path, 0, 1)):
        with pytest.raises(MediaError, match=rf"^{re.escape(str(script))}: {NOT_MEDIA} \(it accepts wav, flac, .*\)$"):
            read(script)


@pytest.mark.parametrize("name, body, says", [
    ("playlist.mp3", "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nother.opus\n#EXT-X-ENDLIST\n", "cannot be decoded as audio"),
    ("playlist.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nother.opus\n#EXT-X-ENDLIST\n", NOT_MEDIA),
    ("notes.flac", "Minutes of the meeting, not a recording.\n" * 40, "decodes to no audio"),
    ("subtitles.wav", "1\n00:00:01,000 --> 00:00:04,000\nHello.\n", NOT_MEDIA),
])
def test_text_named_like_media_is_refused(tmp_path, name, body, says):
    (tmp_path / "other.opus").write_bytes((DEMO / "en_5g_pilots.opus").read_bytes())
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(MediaError, match=rf"^{re.escape(str(path))}: {says}") as refused:
        probe(path)
    assert "\n" not in str(refused.value)


def test_an_image_named_wav_is_refused(tmp_path):
    path = tmp_path / "photo.wav"
    with av.open(str(path), "w", format="image2pipe") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")),
                       *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(MediaError, match=rf"photo\.wav: {NOT_MEDIA}"):
        load_audio(path)


def test_audio_in_a_codec_outside_the_list_is_refused(tmp_path):
    path = tmp_path / "old.mkv"
    write_tone(path, "matroska", "real_144", 8_000)
    with pytest.raises(MediaError, match=r"old\.mkv: its audio is ra_144, not a codec talksearch decodes"):
        probe(path)


def test_a_name_with_a_colon_is_a_file_not_a_protocol(tmp_path, monkeypatch):
    (tmp_path / "Interview: part 1.opus").write_bytes((DEMO / "en_5g_pilots.opus").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert probe(Path("Interview: part 1.opus")) == pytest.approx(39, abs=1)
