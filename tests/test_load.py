"""Searches stay answered while recordings are transcribed: a real ``talksearch serve`` process on a
loopback port, 8 client threads searching for LOAD_SECONDS (60 unless set) while uploads of the spoken
demo talks are transcribed, translated and indexed one after another. Every search must answer 200;
the p50 and p99 latencies are printed with how much of the time an ingest was running, and every
upload must end searchable."""
from __future__ import annotations

import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.helpers import API_KEY, DEMO, KOREAN, free_port, wait_for_job, wait_until_up

pytestmark = pytest.mark.needs_models  # a real server in a process of its own

LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
CLIENTS = 8
UPLOADS = sorted(DEMO.glob("*.opus"))
SEARCHES = [  # GET and POST, every mode, several languages, a quoted phrase
    ("GET", {"q": "실시간 주차 정보"}), ("POST", {"q": "parking spaces for residents", "k": 5}),
    ("GET", {"q": "digital platform", "mode": "lexical"}), ("POST", {"q": '"디지털 플랫폼"'}),
    ("GET", {"q": "защита персональных данных", "mode": "dense"}), ("POST", {"q": "city cybersecurity", "lang": "ru"}),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``talksearch serve`` with a key, over a library holding the Korean talk (imported, so it is quick)."""
    library = tmp_path_factory.mktemp("loaded")
    port, log = free_port(), library / "server.log"
    env = {**os.environ, "TALKSEARCH_LIBRARY": str(library / "library"), "TALKSEARCH_API_KEY": API_KEY}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base)
        with httpx.Client(base_url=base, timeout=60, headers={"X-API-Key": API_KEY}) as client:
            files = {"transcript": (KOREAN, (DEMO / KOREAN).read_bytes()),
                     "translation": ("ko.en.srt", (DEMO / "ko_digital_platform.en.srt").read_bytes())}
            imported = wait_for_job(client.get, client.post("/recordings/import", files=files).json()["id"])
            assert imported["state"] == "done", imported["error"]
            yield client
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()


def search_until(base_url: str, deadline: float, offset: int, latencies: list[float], errors: list[str]) -> None:
    """One client: search in turn until the deadline, keeping each answer's latency or what went wrong."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for method, query in itertools.islice(itertools.cycle(SEARCHES), offset, None):
            if time.monotonic() >= deadline:
                return
            started = time.perf_counter()
            try:
                response = (client.get("/search", params=query) if method == "GET" else client.post("/search", json=query))
            except httpx.HTTPError as exc:
                errors.append(f"{method} {query}: {exc!r}")
                continue
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors.append(f"{method} {query}: {response.status_code} {response.text[:200]}")


def test_searches_answer_while_recordings_are_transcribed(server, capsys):
    jobs = {}
    for path in UPLOADS:
        upload = server.post("/recordings", files={"file": (path.name, path.read_bytes())})
        assert upload.status_code == 202, upload.text
        jobs[path.name] = upload.json()["id"]

    latencies: list[float] = []  # list.append is atomic: the threads share these
    errors: list[str] = []
    deadline = time.monotonic() + LOAD_SECONDS
    clients = [threading.Thread(target=search_until, args=(str(server.base_url), deadline, n, latencies, errors))
               for n in range(CLIENTS)]
    for client in clients:
        client.start()
    polls = []  # whether an ingest was running, once a second
    while any(client.is_alive() for client in clients):
        polls.append(any(job["state"] == "running" for job in server.get("/jobs").json()))
        time.sleep(1)
    for client in clients:
        client.join()

    assert errors == []
    assert any(polls), "no ingest ran during the searches"
    cuts = statistics.quantiles(latencies, n=100)
    with capsys.disabled():
        print(f"\n{len(latencies)} searches by {CLIENTS} clients in {LOAD_SECONDS:.0f} s, an ingest running "
              f"{sum(polls) / len(polls):.0%} of the time: p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms")

    done = {name: wait_for_job(server.get, job_id) for name, job_id in jobs.items()}
    assert {name: job["error"] for name, job in done.items() if job["state"] != "done"} == {}
    hits = server.get("/search", params={"q": "защита персональных данных", "lang": "ru"}).json()
    assert hits and hits[0]["recording_id"] == done["ru_cybersecurity.opus"]["recording_id"]
