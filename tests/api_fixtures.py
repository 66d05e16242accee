"""Shared by the API, server and page tests: one small library built with the real models once per
run (two spoken demo talks and the Korean subtitle import), and short clips to upload.

Test modules load it with ``pytest_plugins = ["api_fixtures"]`` so its session fixtures exist once;
it holds no asserts to rewrite (PYTEST_DONT_REWRITE), so importing its helpers first is fine.
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from api.config import Settings
from api.service import Talksearch
from ingest.media import encode_clip
from ingest.records import Metadata

DEMO = Path(__file__).resolve().parents[1] / "api" / "demo"
API_KEY = "test-key-not-secret"
SPOKEN = ("en_5g_pilots.opus", "ru_smart_traffic_lights.opus")
KOREAN = "ko_digital_platform.srt"
JOB_TIMEOUT = 180.0


def demo_talk(file: str) -> dict:
    return next(t for t in json.loads((DEMO / "talks.json").read_text(encoding="utf-8"))["talks"] if t["file"] == file)


def talk_metadata(file: str) -> Metadata:
    talk = demo_talk(file)
    return Metadata(talk["title"], talk["language"], talk["event"], talk["session"], talk["speaker"], talk["date"])


@pytest.fixture(scope="session")
def demo_service(tmp_path_factory) -> Talksearch:
    """Warm models and a library of two transcribed talks plus the Korean transcript."""
    settings = Settings.from_env({}, library=tmp_path_factory.mktemp("library"), api_key=API_KEY)
    service = Talksearch(settings)
    service.warm_up()
    for file in SPOKEN:
        service.ingest(DEMO / file, replace(talk_metadata(file), language=None))
    service.import_transcript(DEMO / KOREAN, None, talk_metadata(KOREAN), DEMO / "ko_digital_platform.en.srt")
    return service


@pytest.fixture(scope="session")
def recording_ids(demo_service) -> dict[str, str]:
    """Demo file name -> recording id."""
    by_title = {r.title: r.id for r in demo_service.recordings()}
    return {file: by_title[demo_talk(file)["title"]] for file in (*SPOKEN, KOREAN)}


def cut_wav(tmp_dir: Path, file: str, sentence: int, name: str) -> Path:
    """One sentence of a demo talk as a short WAV: quick to transcribe, with known words in it."""
    start, end = demo_talk(file)["sentence_times"][sentence]
    path = tmp_dir / name
    path.write_bytes(encode_clip(DEMO / file, max(0.0, start - 0.3), end + 0.4, "wav"))
    return path


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
