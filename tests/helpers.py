"""What the test modules share besides fixtures (those are in conftest.py): where things are, the
demo talks' scripts, stand-ins for the models, builders of recordings and libraries, and the waits
of the tests that talk to a server."""
from __future__ import annotations

import hashlib
import json
import re
import socket
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from api.cli import main
from index.vectors import ENGLISH, ORIGINAL, View
from ingest.chunking import chunk_transcript
from ingest.media import SAMPLE_RATE, encode_clip
from ingest.records import Chunk, Metadata, Recording, Segment, Transcript, Word

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "api" / "demo"
FIXTURES = ROOT.parent / "shared" / "fixtures"
# The demo talks as scripted (title, language, sentences and when each is said), read once.
TALKS: list[dict] = json.loads((DEMO / "talks.json").read_text(encoding="utf-8"))["talks"]

API_KEY = "test-key-not-secret"
SPOKEN = ("en_5g_pilots.opus", "ru_smart_traffic_lights.opus")
KOREAN = "ko_digital_platform.srt"
JOB_TIMEOUT = 180.0


def needs_fixtures(*relative: str):
    """Skip a test when the shared speech fixtures are not beside the project."""
    missing = [r for r in relative if not (FIXTURES / r).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"speech fixtures absent: {', '.join(missing)}")


# -- the demo talks ---------------------------------------------------------------------------------
def demo_talk(file: str) -> dict:
    return next(t for t in TALKS if t["file"] == file)


def talk_metadata(file: str) -> Metadata:
    talk = demo_talk(file)
    return Metadata(talk["title"], talk["language"], talk["event"], talk["session"], talk["speaker"], talk["date"])


def cut_wav(tmp_dir: Path, file: str, sentence: int, name: str) -> Path:
    """One sentence of a demo talk as a short WAV: quick to transcribe, with known words in it."""
    start, end = demo_talk(file)["sentence_times"][sentence]
    path = tmp_dir / name
    path.write_bytes(encode_clip(DEMO / file, max(0.0, start - 0.3), end + 0.4, "wav"))
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """16-bit mono PCM, clipped to [-1, 1]."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``talksearch ARGS`` run in this process: the exit code, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- without the models -----------------------------------------------------------------------------
class HashingEmbedder:
    """A tiny deterministic stand-in for unit tests of storage and ranking logic: a bag of
    hashed words. The real model is exercised by the end-to-end tests."""

    def __init__(self, name: str = "hashing-test", dimension: int = 64):
        self.model_name = name
        self.dimension = dimension
        self.companion = None  # no second model beside it

    def warm_up(self) -> None:
        pass

    def blocks(self) -> list[tuple[slice, float]]:
        return [(slice(0, self.dimension), 1.0)]

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def passages(self, texts):
        return np.array([self._vector(t) for t in texts], dtype=np.float32).reshape(len(texts), self.dimension)

    queries = passages


def recording(rid: str, language: str = "en", duration: float = 60.0, **meta) -> Recording:
    """A recording "Talk {rid}" as the tests make them; ``meta``: speaker, event, date..."""
    return Recording(rid, f"Talk {rid}", f"/talks/{rid}.ogg", f"hash-{rid}", duration, language, "2026-01-01", **meta)


def timed(text: str, start: float, language: str) -> Segment:
    """A segment whose words are 0.5 s apart, as Whisper would time them."""
    words = [Word(start + 0.5 * i, start + 0.5 * i + 0.4, " " + w) for i, w in enumerate(text.split())]
    return Segment(start, words[-1].end, text, language, words)


def said(language: str, sentences: list[str]) -> Transcript:
    """The sentences spoken one after another, a second apart."""
    segments, t = [], 0.0
    for sentence in sentences:
        segments.append(timed(sentence, t, language))
        t = segments[-1].end + 1.0
    return Transcript(language, t, segments)


def add(library, rid: str, transcript: Transcript, chunks: list[Chunk] | None = None, **meta) -> None:
    """Store one recording of ``transcript`` in a library, cut into chunks as ingest cuts it unless
    ``chunks`` are given; ``meta`` as for ``recording``."""
    chunks = chunk_transcript(transcript, rid) if chunks is None else chunks
    library.add(recording(rid, transcript.language, transcript.duration, **meta), transcript, chunks)


# Small random unit vectors stand in for embeddings in tests of the stores themselves.
DIM = 32


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def add_recording(store, rid: str, vectors: np.ndarray, speaker: str | None = None) -> None:
    """One Russian recording straight into a store, a chunk per pair of rows: each chunk has an
    original and an English view."""
    chunks, views = [], []
    for i in range(len(vectors) // 2):
        chunks.append(Chunk(rid, 10.0 * i, 10.0 * i + 9, "ru", f"текст {rid} {i}", f"text {rid} {i}", i))
        views += [View(i, ORIGINAL, 10.0 * i, 10.0 * i + 9, "", "ru"), View(i, ENGLISH, 10.0 * i, 10.0 * i + 9, "", "en")]
    segments = [Segment(c.start, c.end, c.text, "ru", [Word(c.start, c.end, " " + c.text)], c.translation) for c in chunks]
    talk = recording(rid, "ru", 10.0 * len(chunks), speaker=speaker)
    store.add(talk, Transcript("ru", talk.duration, segments), chunks, views, vectors)


# -- servers and jobs -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(base_url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{base_url} did not answer /health within {timeout:.0f} s")


def wait_for_job(get, job_id: str, timeout: float = JOB_TIMEOUT) -> dict:
    """Poll ``GET /jobs/{id}`` (``get`` is a client's get) until the job ends."""
    deadline = time.monotonic() + timeout
    job = {"state": "unknown"}
    while time.monotonic() < deadline:
        try:
            job = get(f"/jobs/{job_id}").json()
        except httpx.TransportError:  # a kept-alive connection the busy server closed: ask again
            time.sleep(0.2)
            continue
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still {job['state']} after {timeout:.0f} s")
