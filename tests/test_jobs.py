"""The job store shared by server processes: a restart fails only the jobs of processes that died,
never a live neighbour's; the queue is bounded (429 over HTTP) and old history is pruned; partial
uploads a crash left are removed when a server starts."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time as clock
from contextlib import closing

import pytest
from fastapi.testclient import TestClient

from api import jobs
from api.app import create_app
from api.jobs import FAILED, RESTARTED, JobStore, QueueFullError
from tests.helpers import API_KEY, DEMO, ROOT

HOLD_A_RUNNING_JOB = """
import sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from api.jobs import JobStore
store = JobStore(Path(sys.argv[1]))
job = store.create("upload", "live.wav", [])
store.update(job.id, state="running", progress=0.2)
print(job.id, flush=True)
time.sleep(float(sys.argv[2]))
"""


def other_process(tmp_path, seconds: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", HOLD_A_RUNNING_JOB.format(root=str(ROOT)),
                                str(tmp_path / "jobs.sqlite"), str(seconds)], stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def test_a_second_server_leaves_a_live_servers_running_job_alone(tmp_path):
    neighbour, live_job = other_process(tmp_path, 60)
    try:
        starting = JobStore(tmp_path / "jobs.sqlite")
        assert starting.fail_unfinished(RESTARTED, orphans=True) == []
        assert starting.get(live_job).state == "running"
    finally:
        neighbour.kill()
        neighbour.wait()
    # killed (no clean shutdown): its job is now an orphan, failed by the next server to start
    again = JobStore(tmp_path / "jobs.sqlite")
    assert [j.id for j in again.fail_unfinished(RESTARTED, orphans=True)] == [live_job]
    job = again.get(live_job)
    assert (job.state, job.error, job.progress) == (FAILED, RESTARTED, 0.2)


def test_a_crashed_store_from_before_owners_is_failed_at_restart(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    left = store.create("upload", "crashed.wav", [tmp_path / "crashed.wav"])
    store.update(left.id, state="running", progress=0.4)
    store.close()
    with closing(sqlite3.connect(tmp_path / "jobs.sqlite")) as old, old:
        old.execute("UPDATE jobs SET owner = NULL")  # as written by an older version
    reopened = JobStore(tmp_path / "jobs.sqlite")
    assert [j.id for j in reopened.fail_unfinished(RESTARTED, orphans=True)] == [left.id]


def test_the_queue_is_bounded_and_finished_jobs_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "MAX_QUEUED", 3)
    monkeypatch.setattr(jobs, "KEEP_FINISHED", 2)
    store = JobStore(tmp_path / "jobs.sqlite")
    waiting = [store.create("upload", f"{i}.wav", []) for i in range(3)]
    with pytest.raises(QueueFullError, match="3 jobs are already waiting"):
        store.create("upload", "one-too-many.wav", [])
    for job in waiting:
        store.update(job.id, state="done")
    newest = [store.create("upload", f"new{i}.wav", []) for i in range(2)]
    for job in newest:
        store.update(job.id, state="done")
    store.create("upload", "last.wav", [])
    assert len(store.recent(100)) == 3  # two finished kept, plus the queued one
    assert {j.id for j in store.recent(100)} >= {j.id for j in newest}


# -- the same over HTTP, on the shared demo service ---------------------------------------------------


def test_a_full_queue_is_429_and_keeps_nothing_of_the_upload(demo_service, monkeypatch):
    monkeypatch.setattr(jobs, "MAX_QUEUED", 0)
    media = demo_service.media_dir
    before = set(media.iterdir()) if media.exists() else set()
    with TestClient(create_app(demo_service.settings, demo_service), base_url="http://127.0.0.1") as client:
        refused = client.post("/recordings", headers={"X-API-Key": API_KEY},
                              files={"file": ("queued.opus", (DEMO / "en_open_data_portal.opus").read_bytes())})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert "already waiting" in refused.json()["detail"]
    assert set(media.iterdir()) == before


def test_uploads_a_crash_cut_off_are_removed_at_start(demo_service, tmp_path):
    media = demo_service.media_dir
    media.mkdir(parents=True, exist_ok=True)
    stale, live = media / ".incoming-crashed.wav", media / ".incoming-arriving.wav"
    for partial in (stale, live):
        partial.write_bytes(b"RIFF")
    os.utime(stale, (clock.time() - 3600, clock.time() - 3600))
    with TestClient(create_app(demo_service.settings, demo_service), base_url="http://127.0.0.1"):
        assert not stale.exists() and live.exists()
    live.unlink()
