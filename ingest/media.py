"""Decoding any media ffmpeg understands (through PyAV) into 16 kHz mono samples, and cutting clips."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import av
import numpy as np
from faster_whisper.audio import decode_audio

from .errors import MediaError

SAMPLE_RATE = 16_000
MEDIA_SUFFIXES = frozenset(
    ".wav .flac .mp3 .ogg .oga .opus .m4a .aac .wma .mp4 .m4v .mkv .webm .mov .avi .mpeg .mpg .ts .amr .3gp".split()
)
# Peak amplitude below which a whole file counts as silence (about -80 dBFS).
SILENCE_PEAK = 1e-4


def is_media_file(path: Path) -> bool:
    """Used to pick media out of a folder; single files are always tried whatever their suffix."""
    return path.is_file() and path.suffix.lower() in MEDIA_SUFFIXES


def content_hash(path: Path) -> str:
    """SHA-256 of the bytes, so the same recording under another name is recognised."""
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_audio(path: Path) -> np.ndarray:
    """Return float32 mono samples at 16 kHz, or raise MediaError with the reason."""
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise MediaError(f"{path}: no audio stream in this file")
        audio = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise MediaError(f"{path}: cannot decode as audio ({exc.__class__.__name__}: {exc})") from exc
    if audio.size < SAMPLE_RATE // 10:
        raise MediaError(f"{path}: decodes to no audio (corrupt or empty file)")
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise MediaError(f"{path}: the audio is silent")
    return audio


def encode_clip(path: Path, start: float, end: float, fmt: str = "ogg") -> bytes:
    """Re-encode exactly [start, end) of a file's audio, sample-accurate rather than keyframe-snapped."""
    codecs = {"ogg": ("ogg", "libopus", 48_000), "mp3": ("mp3", "libmp3lame", 44_100), "wav": ("wav", "pcm_s16le", SAMPLE_RATE)}
    if fmt not in codecs:
        raise MediaError(f"unsupported clip format {fmt!r}; use one of {', '.join(codecs)}")
    if end <= start:
        raise MediaError(f"clip end ({end}) must be after its start ({start})")
    container_fmt, codec, rate = codecs[fmt]
    span = decode_span(path, start, end, rate)
    if span.size == 0:
        raise MediaError(f"clip {start:.2f}-{end:.2f}s is outside the recording")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame_size = stream.codec_context.frame_size or 1024
        pcm = (np.clip(span, -1.0, 1.0) * 32767).astype(np.int16)
        pts = 0
        for offset in range(0, pcm.size, frame_size):
            piece = pcm[offset: offset + frame_size]
            frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = pts
            pts += piece.size
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def decode_span(path: Path, start: float, end: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float samples of [start, end) only: seek shortly before the span and decode just it,
    so a clip from a two-hour talk costs what the clip costs. Cut on samples, not packets."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    pieces: list[np.ndarray] = []
    origin: float | None = None
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            if start > 2.0:
                container.seek(int((start - 2.0) * av.time_base))
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if origin is None:
                    origin = frame.time
                if frame.time > end + 1.0:
                    break
                pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise MediaError(f"{path}: cannot decode as audio ({exc})") from exc
    if origin is None or not pieces:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(pieces)
    first = max(0, int(round((start - origin) * rate)))
    return samples[first: max(first, int(round((end - origin) * rate)))]
