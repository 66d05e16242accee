"""A real server process on a loopback port, exercised over HTTP (``talksearch serve`` configured from
TALKSEARCH_* variables), and how ``serve`` and ``uvicorn api.app:app`` pick their settings."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import uvicorn.importer

from api.cli import main
from api.jobs import RESTARTED, JobStore
from tests.helpers import API_KEY, DEMO, free_port, wait_for_job, wait_until_up

pytestmark = pytest.mark.needs_models  # a real server in a process of its own

TALKSEARCH = Path(sys.executable).parent / "talksearch"  # the installed command, as a user runs it


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``talksearch serve`` over an empty library in which a previous process left a job running."""
    library = tmp_path_factory.mktemp("served")
    jobs = JobStore(library / "jobs.sqlite")
    left = jobs.create("upload", "crashed.wav", [library / "media" / "crashed.wav"])
    jobs.update(left.id, state="running", progress=0.3)
    jobs.close()
    port, log = free_port(), library / "server.log"
    command = [str(TALKSEARCH)] if TALKSEARCH.exists() else [sys.executable, "-m", "api.cli"]
    env = {**os.environ, "TALKSEARCH_LIBRARY": str(library), "TALKSEARCH_API_KEY": API_KEY}
    with open(log, "w") as out:
        process = subprocess.Popen([*command, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base)
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client, left.id
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, log.read_text()
    assert "Application shutdown complete" in log.read_text()


def test_a_job_left_running_by_a_dead_server_is_failed(served):
    client, left = served
    job = client.get(f"/jobs/{left}").json()
    assert (job["state"], job["error"]) == ("failed", RESTARTED)


def test_import_search_and_delete_over_http(served):
    client, _ = served
    assert client.get("/health").json()["writes"] == "api-key"
    files = {"transcript": ("ko.srt", (DEMO / "ko_digital_platform.srt").read_bytes()),
             "translation": ("ko.en.srt", (DEMO / "ko_digital_platform.en.srt").read_bytes())}
    assert client.post("/recordings/import", files=files).status_code == 401
    accepted = client.post("/recordings/import", files=files, data={"title": "디지털 플랫폼", "date": "2026-03-19"},
                           headers={"X-API-Key": API_KEY})
    assert accepted.status_code == 202, accepted.text
    job = wait_for_job(client.get, accepted.json()["id"])
    assert job["state"] == "done", job["error"]

    hits = client.get("/search", params={"q": "실시간 주차 정보", "lang": "ko"}).json()
    assert hits[0]["recording_id"] == job["recording_id"] and "주차" in hits[0]["text"]
    assert client.post("/search", json={"q": "parking spaces", "k": 1}).json()[0]["translation"]
    vtt = client.get(f"/recordings/{job['recording_id']}/transcript", params={"format": "vtt"})
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8" and "세종시" in vtt.text
    page = client.get("/")
    assert page.headers["content-type"] == "text/html; charset=utf-8"

    assert client.delete(f"/recordings/{job['recording_id']}", headers={"X-API-Key": "guess"}).status_code == 403
    assert client.delete(f"/recordings/{job['recording_id']}", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert client.get("/stats").json()["recordings"] == 0
    assert client.get("/search", params={"q": "주차"}).json() == []


def test_uvicorn_gets_an_app_configured_from_the_environment(monkeypatch, tmp_path):
    """What ``uvicorn api.app:app`` does: import the attribute, built on access from TALKSEARCH_* variables."""
    import api.app as module

    monkeypatch.delitem(vars(module), "app", raising=False)
    monkeypatch.setenv("TALKSEARCH_LIBRARY", str(tmp_path / "library"))
    monkeypatch.setenv("TALKSEARCH_API_KEY", "from-env")
    app = uvicorn.importer.import_from_string("api.app:app")
    settings = app.state.backend.settings
    assert (settings.library, settings.http.api_key) == (tmp_path / "library", "from-env")
    assert module.app is app and not (tmp_path / "library").exists()  # nothing loaded or written until startup


def test_serve_without_a_key_listens_on_loopback_only(monkeypatch, capsys, tmp_path):
    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: ran.update(host=host, port=port, app=app))
    monkeypatch.delenv("TALKSEARCH_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "8123", "--library", str(tmp_path)]) == 0
    assert (ran["host"], ran["port"]) == ("127.0.0.1", 8123)
    assert ran["app"].state.backend.settings.library == tmp_path
    assert "no TALKSEARCH_API_KEY set, so listening on 127.0.0.1 only, not 0.0.0.0" in capsys.readouterr().err
    monkeypatch.setenv("TALKSEARCH_API_KEY", "k")
    main(["serve", "--host", "0.0.0.0", "--port", "8123", "--library", str(tmp_path)])
    assert ran["host"] == "0.0.0.0"
