"""Decoding any media ffmpeg understands (through PyAV) into 16 kHz mono samples, and cutting clips.

Long recordings are never decoded whole for transcription: ``AudioSource`` streams a file in
blocks and ``AudioSource.windows`` hands out windows of about ``window_seconds`` cut in the
widest pause of their last minute (Silero VAD, as faster-whisper ships it), so no word is split
between windows and memory stays bounded whatever the length. The container's declared
duration is checked before decoding and the decoded samples are counted while decoding, so a
small file claiming (or holding) ten hours of silence is refused at once, not after eating
memory. Transcription memory follows the window, not the file (faster-whisper's features and
VAD for one window dominate): a 3-hour file read in 10-minute windows peaked at 1,004 MiB RSS,
model included (``python -m benchmarks.ingest --skip-speed --long 180``).

Every read opens the file through ``_open``, which lets FFmpeg use only real media demuxers and
only the local file protocol, and accepts only known audio codecs. FFmpeg would otherwise follow a
concat script, an HLS playlist or an image sequence named ``talk.wav`` into other files (an
uploaded 401-byte script decoded 779 s gathered from the library's media folder), or read a
text or image file as "media".
"""
from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from core.errors import MediaError

SAMPLE_RATE = 16_000
# The demuxers media is read with (FFmpeg's names; "mov" and "matroska" cover their families) and
# the suffixes they serve. Nothing else is opened, whatever a file is called.
DEMUXERS = {
    "wav": ".wav", "flac": ".flac", "mp3": ".mp3", "ogg": ".ogg .oga .opus", "aac": ".aac", "asf": ".wma",
    "mov": ".m4a .mp4 .m4v .mov .3gp", "matroska": ".mkv .webm", "avi": ".avi", "mpeg": ".mpeg .mpg",
    "mpegts": ".ts", "amr": ".amr",
}
MEDIA_SUFFIXES = frozenset(suffix for suffixes in DEMUXERS.values() for suffix in suffixes.split())
# Audio codecs decoded (FFmpeg's canonical names), besides every PCM variant ("pcm_*").
AUDIO_CODECS = frozenset(
    "aac aac_latm ac3 eac3 alac amr_nb amr_wb dts flac mp1 mp2 mp3 opus vorbis speex wmav1 wmav2 wmapro "
    "wmalossless wmavoice gsm_ms adpcm_ima_wav adpcm_ms adpcm_g722 adpcm_g726".split()
)
# Applied by FFmpeg to the file and to anything a demuxer would open from it.
_OPEN_OPTIONS = {"format_whitelist": ",".join(DEMUXERS), "protocol_whitelist": "file"}
# Peak amplitude below which a whole file counts as silence (about -80 dBFS).
SILENCE_PEAK = 1e-4
# Longest recording accepted unless configured otherwise (Settings.max_duration_hours).
MAX_SECONDS = 4 * 3600.0
# Source samples gathered before each resampling call, as faster-whisper's decode_audio does.
_GROUP_SAMPLES = 500_000
# A window ends in the widest pause of its last this many seconds.
_PAUSE_SEARCH_SECONDS = 60.0
_PAUSE_VAD = {"min_silence_duration_ms": 200, "speech_pad_ms": 0}


def is_media_file(path: Path) -> bool:
    """Used to pick media out of a folder; single files are always tried whatever their suffix."""
    return path.is_file() and path.suffix.lower() in MEDIA_SUFFIXES


def _clock(seconds: float) -> str:
    return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


# What FFmpeg, through PyAV, raises for a file it cannot read.
_FAILURES = (av.error.FFmpegError, ValueError, OSError)


def _undecodable(path: Path, exc: Exception) -> MediaError:
    return MediaError(f"{path}: cannot be decoded as audio ({exc.__class__.__name__}: {exc})")


@contextmanager
def _open(path: Path) -> Iterator[av.container.InputContainer]:
    """The one way media is opened: a local file read by one of DEMUXERS, whose first audio stream
    has a codec in AUDIO_CODECS. FFmpeg failures, on opening or later while the caller decodes,
    become MediaError."""
    try:  # "file:" so that a name like "Interview: part 1.mp3" is not read as a protocol
        container = av.open(f"file:{path}", metadata_errors="ignore", container_options=_OPEN_OPTIONS)
    except av.error.ArgumentError as exc:  # FFmpeg refuses a demuxer outside the whitelist with EINVAL
        raise MediaError(f"{path}: not an audio or video file talksearch reads (it accepts {', '.join(DEMUXERS)} "
                         "containers only)") from exc
    except _FAILURES as exc:
        raise _undecodable(path, exc) from exc
    try:
        with container:
            # the whitelist decides; this names the container should FFmpeg ever ignore the option
            if not set(container.format.name.split(",")) & DEMUXERS.keys():
                raise MediaError(f"{path}: {container.format.name} files are not read (only {', '.join(DEMUXERS)})")
            if not container.streams.audio:
                raise MediaError(f"{path}: no audio stream in this file")
            codec = container.streams.audio[0].codec_context.codec.canonical_name
            if codec not in AUDIO_CODECS and not codec.startswith("pcm_"):
                raise MediaError(f"{path}: its audio is {codec}, not a codec talksearch decodes")
            yield container
    except _FAILURES as exc:
        raise _undecodable(path, exc) from exc


def probe(path: Path) -> float | None:
    """Check a file as every read does and decode its first audio frame, so a file that cannot be
    read is refused at once; returns the duration it declares (None when it declares none)."""
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    with _open(path) as container:
        stream = container.streams.audio[0]
        if stream.duration and stream.time_base:
            declared = float(stream.duration * stream.time_base)
        else:
            declared = container.duration / av.time_base if container.duration else None
        if next(_valid_frames(container.decode(stream)), None) is None:
            raise MediaError(f"{path}: decodes to no audio (corrupt or empty file)")
    return declared


@dataclass
class AudioSource:
    """A media file read as 16 kHz mono, a block at a time. Creating one probes the file (see
    ``probe``) and checks that it declares no more than ``max_seconds``; decoding counts the
    samples too, since a container's duration can be missing or wrong."""

    path: Path
    max_seconds: float = MAX_SECONDS
    declared: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.declared = probe(self.path)
        if self.declared is not None and self.declared > self.max_seconds:
            raise MediaError(f"{self.path}: declares {_clock(self.declared)} of audio, over the "
                             f"{_clock(self.max_seconds)} limit (max_duration_hours)")

    def blocks(self, seconds: float = 30.0) -> Iterator[np.ndarray]:
        """Float32 samples in consecutive blocks of about ``seconds``; MediaError for a file that
        turns out corrupt, silent or longer than the limit."""
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pending: list[np.ndarray] = []
        held = total = 0
        peak = 0.0
        with _open(self.path) as container:
            for group in _grouped(_valid_frames(container.decode(container.streams.audio[0]))):
                for frame in resampler.resample(group):
                    samples = frame.to_ndarray().reshape(-1)
                    pending.append(samples)
                    held += samples.size
                    total += samples.size
                    if total > self.max_seconds * SAMPLE_RATE:
                        raise MediaError(f"{self.path}: decodes to more than the {_clock(self.max_seconds)} "
                                         "limit of audio (max_duration_hours)")
                    if held >= seconds * SAMPLE_RATE:
                        block = np.concatenate(pending)
                        peak = max(peak, float(np.max(np.abs(block))))
                        pending, held = [], 0
                        yield block
        if total < SAMPLE_RATE // 10:
            raise MediaError(f"{self.path}: decodes to no audio (corrupt or empty file)")
        last = np.concatenate(pending) if pending else np.zeros(0, dtype=np.float32)
        if max(peak, float(np.max(np.abs(last), initial=0.0))) < SILENCE_PEAK:
            raise MediaError(f"{self.path}: the audio is silent")
        if last.size:
            yield last

    def windows(self, seconds: float) -> Iterator[tuple[float, np.ndarray]]:
        """(offset in seconds, samples) of consecutive windows of about ``seconds`` that together
        cover the file, each cut in the widest pause of its last minute."""
        pending: list[np.ndarray] = []
        held = offset = 0
        for block in self.blocks():
            pending.append(block)
            held += block.size
            if held >= seconds * SAMPLE_RATE:
                audio = np.concatenate(pending)
                cut = pause_cut(audio)
                yield offset / SAMPLE_RATE, audio[:cut]
                offset += cut
                pending, held = [audio[cut:].copy()], audio.size - cut
                del audio
        if held:
            yield offset / SAMPLE_RATE, np.concatenate(pending)


def _valid_frames(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Skip undecodable packets, as faster-whisper does, so one damaged frame loses only itself."""
    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _grouped(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame | None]:
    """Frames merged into groups of about _GROUP_SAMPLES (resampling frame by frame is slow), then
    None to flush the resampler."""
    fifo = av.AudioFifo()
    for frame in frames:
        frame.pts = None
        fifo.write(frame)
        if fifo.samples >= _GROUP_SAMPLES:
            yield fifo.read()
    if fifo.samples:
        yield fifo.read()
    yield None


def pause_cut(audio: np.ndarray) -> int:
    """Sample index in the middle of the widest pause in the last _PAUSE_SEARCH_SECONDS of
    ``audio`` (the quietest 50 ms there when speech never pauses; the end when there is none)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # here: importing faster-whisper
    # cost a command-line search, which reads no media, 0.1 s of its start-up

    start = max(0, audio.size - int(_PAUSE_SEARCH_SECONDS * SAMPLE_RATE))
    tail = audio[start:]
    speech = get_speech_timestamps(tail, VadOptions(**_PAUSE_VAD))
    if not speech:
        return audio.size
    edges = [0] + [edge for span in speech for edge in (span["start"], span["end"])] + [tail.size]
    gap_start, gap_end = max(zip(edges[::2], edges[1::2]), key=lambda gap: (gap[1] - gap[0], gap[0]))
    if gap_end > gap_start:
        return start + (gap_start + gap_end) // 2
    frame = SAMPLE_RATE // 20
    energy = np.square(tail[: tail.size // frame * frame]).reshape(-1, frame).sum(axis=1)
    return start + int(np.argmin(energy)) * frame + frame // 2


def load_audio(path: Path, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """Return float32 mono samples at 16 kHz, or raise MediaError with the reason. The whole file
    is held in memory: for transcription, read an AudioSource in windows instead."""
    return np.concatenate(list(AudioSource(path, max_seconds).blocks()))


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
    with _open(path) as container:
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
    if origin is None or not pieces:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate(pieces)
    first = max(0, int(round((start - origin) * rate)))
    return samples[first: max(first, int(round((end - origin) * rate)))]
