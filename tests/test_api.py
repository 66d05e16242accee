"""The HTTP API with the real models on a small library: every endpoint, every error status, the
API key, clips whose length is the span asked for, Range requests, and jobs from upload to searchable."""
from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import time
import wave
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from faster_whisper.audio import decode_audio

from api.app import create_app
from api.jobs import FAILED, SHUT_DOWN, JobRunner, JobStore
from api.service import stored_name
from core.errors import UserError
from index.library import Hit, SearchRequest
from tests.helpers import API_KEY, DEMO, cut_wav, wait_for_job

REMOTE = ("203.0.113.7", 40000)  # a client on another machine
HIT_FIELDS = [f.name for f in fields(Hit)]
EN, RU, KO = "en_5g_pilots.opus", "ru_smart_traffic_lights.opus", "ko_digital_platform.srt"


@pytest.fixture(scope="module")
def app(demo_service) -> FastAPI:
    return create_app(demo_service.settings, demo_service)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, client=REMOTE, headers={"X-API-Key": API_KEY}) as started:
        yield started


@pytest.fixture
def anonymous(app, client) -> TestClient:
    """No key; shares the running app of ``client``."""
    return TestClient(app, client=REMOTE)


def media_dir(app) -> Path:
    return app.state.backend.media_dir


def staged_files(app) -> set[str]:
    return {p.name for p in media_dir(app).iterdir()}


# -- reading ---------------------------------------------------------------------------------------
def test_health_and_stats(client):
    assert client.get("/health").json() == {"status": "ok", "version": "0.1.0", "writes": "api-key"}
    stats = client.get("/stats").json()
    assert stats["recordings"] == 3 and stats["chunks"] >= 3
    assert stats["hours"] == pytest.approx((38.96 + 40.78 + 60.0) / 3600, abs=0.002)
    assert (stats["whisper_model"], stats["embedding_model"]) == ("base", "multilingual-e5-small")


def test_search_hits_are_the_cli_hits_plus_where_to_play_them(client, demo_service, recording_ids):
    query = "smart traffic lights at intersections"
    hits = client.get("/search", params={"q": query, "k": 3}).json()
    assert [{k: h[k] for k in HIT_FIELDS} for h in hits] == [asdict(h) for h in demo_service.search(SearchRequest(query, 3))]
    assert set(hits[0]) == {*HIT_FIELDS, "clip_url", "media_url"}
    top = hits[0]
    assert top["recording_id"] == recording_ids[RU] and top["language"] == "ru" and top["translation"]
    base = f"/recordings/{top['recording_id']}"
    assert top["clip_url"] == f"{base}/clip?start={top['start']:g}&end={top['end']:g}&format=ogg"
    assert top["media_url"] == f"{base}/media#t={top['start']:g},{top['end']:g}"


def test_search_filters(client, recording_ids):
    korean = client.post("/search", json={"q": "디지털 플랫폼", "k": 5, "lang": "ko"}).json()
    assert korean and {h["language"] for h in korean} == {"ko"}
    assert all(h["clip_url"] is None and h["media_url"] is None for h in korean)  # a transcript without media
    only = client.get("/search", params=[("q", "city"), ("recording", recording_ids[EN]), ("recording", recording_ids[KO])]).json()
    assert only and {h["recording_id"] for h in only} <= {recording_ids[EN], recording_ids[KO]}

    def dated(**window):
        return {h["recording_id"] for h in client.post("/search", json={"q": "city", "k": 20, **window}).json()}
    assert dated(to="2026-03-17") == {recording_ids[EN]}
    assert dated(**{"from": "2026-03-18"}) == {recording_ids[RU], recording_ids[KO]}
    one_day = client.get("/search", params={"q": "city", "from": "2026-03-18", "to": "2026-03-18"}).json()
    assert {h["recording_id"] for h in one_day} == {recording_ids[RU]}
    assert client.get("/search", params={"q": "city", "from": "2030-01-01"}).json() == []
    by_speaker = client.get("/search", params={"q": "city", "speaker": "алексей гарипов"}).json()
    assert by_speaker and {h["recording_id"] for h in by_speaker} == {recording_ids[RU]}
    assert client.get("/search", params={"q": "city", "event": "Another Forum"}).json() == []


def test_search_modes_phrases_and_highlights(client, recording_ids):
    lexical = client.get("/search", params={"q": "base stations", "mode": "lexical", "k": 1}).json()[0]
    assert lexical["recording_id"] == recording_ids[EN]
    marked = {lexical["text"][a:b].lower() for a, b in lexical["highlights"]}
    assert {"base", "stations"} <= marked
    phrase = client.post("/search", json={"q": '"lamp posts"'}).json()
    assert phrase and all("lamp posts" in h["text"].lower() for h in phrase)
    assert client.get("/search", params={"q": "x", "mode": "psychic"}).status_code == 422


@pytest.mark.parametrize("params, status", [
    ({}, 422), ({"q": "   "}, 422), ({"q": "x", "k": 0}, 422), ({"q": "x", "k": "many"}, 422),
    ({"q": "x", "from": "2026-13-01"}, 422), ({"q": "x", "recording": "000000000000"}, 404),
])
def test_search_rejects_bad_parameters(client, params, status):
    response = client.get("/search", params=params)
    assert response.status_code == status and response.json()["detail"]


def test_search_body_is_validated(client):
    assert client.post("/search", json={"k": 3}).status_code == 422
    assert client.post("/search", content="q=x", headers={"content-type": "text/plain"}).status_code == 422


def test_recordings_and_their_transcripts(client, recording_ids):
    listed = {r["id"]: r for r in client.get("/recordings").json()}
    assert set(listed) == set(recording_ids.values())
    assert listed[recording_ids[EN]]["media_url"] == f"/recordings/{recording_ids[EN]}/media"
    assert listed[recording_ids[KO]]["media_url"] is None
    korean = client.get(f"/recordings/{recording_ids[KO]}").json()
    assert (korean["title"], korean["speaker"], korean["date"]) == ("주민을 위한 디지털 플랫폼", "김서연", "2026-03-19")
    assert len(korean["segments"]) == 8
    first = korean["segments"][0]
    assert (first["start"], first["end"], first["language"]) == (0.5, 6.8, "ko")
    assert first["text"].startswith("안녕하세요") and "digital platform" in first["translation"]


def test_transcript_formats(client, recording_ids):
    path = f"/recordings/{recording_ids[KO]}/transcript"
    as_json = client.get(path)
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["segments"][1]["text"].startswith("이 플랫폼에서")
    srt = client.get(path, params={"format": "srt"})
    assert srt.headers["content-type"] == "application/x-subrip; charset=utf-8"
    assert "00:00:00,500 --> 00:00:06,800" in srt.text and "세종시" in srt.text
    vtt = client.get(path, params={"format": "vtt"})
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8" and vtt.text.startswith("WEBVTT")
    assert client.get(path, params={"format": "docx"}).status_code == 422
    assert client.get("/recordings/000000000000/transcript").status_code == 404


@pytest.mark.parametrize("path", ["/recordings/000000000000", "/recordings/..%2F..%2Fetc%2Fpasswd/media",
                                  "/recordings/nope/clip?start=0&end=1", "/jobs/nope"])
def test_unknown_ids_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.json()["detail"]


def test_recordings_are_named_as_the_cli_names_them(client, recording_ids):
    """An id, a unique start of one, or a title: the same recording from the API as from the CLI;
    a typed "%" or "_" is no wildcard."""
    rid = recording_ids[KO]
    title = client.get(f"/recordings/{rid}").json()["title"]
    for ref in (rid[:6], title):
        assert client.get(f"/recordings/{ref}").json()["id"] == rid
    for wildcard in ("%25", "_"):
        assert client.get(f"/recordings/{wildcard}").status_code == 404


def test_the_cli_and_the_api_answer_a_request_alike(client, demo_service, recording_ids, capsys):
    from api.cli import main

    rid = recording_ids[RU]
    params = {"q": "traffic lights", "k": 3, "recording": rid[:6], "mode": "hybrid"}
    over_http = client.get("/search", params=params).json()
    code = main(["search", params["q"], "--k", "3", "--recording", rid[:6], "--json",
                 "--library", str(demo_service.settings.library)])
    from_cli = json.loads(capsys.readouterr().out)
    assert code == 0 and over_http and {h["recording_id"] for h in over_http} == {rid}
    assert [{k: h[k] for k in HIT_FIELDS} for h in over_http] == from_cli


def test_user_errors_are_4xx_and_internal_ones_500(demo_service):
    """A UserError is the request's fault (400, its one line); any other exception is the server's."""
    app = create_app(demo_service.settings, demo_service)

    def bad_request():
        raise UserError("dates are written YYYY-MM-DD, not '26/11/2026'")

    def bug():
        raise ValueError("an internal invariant broke")
    app.add_api_route("/test-user-error", bad_request)
    app.add_api_route("/test-bug", bug)
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": API_KEY}) as local:
        refused = local.get("/test-user-error")
        broken = local.get("/test-bug")
    assert refused.status_code == 400 and refused.json() == {"detail": "dates are written YYYY-MM-DD, not '26/11/2026'"}
    assert broken.status_code == 500 and "invariant" not in broken.text


# -- playback --------------------------------------------------------------------------------------
def wav_samples(body: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(body)) as clip:
        return np.frombuffer(clip.readframes(clip.getnframes()), dtype=np.int16) / 32768.0, clip.getframerate()


def test_clip_is_exactly_the_span_asked_for(client, recording_ids):
    path = f"/recordings/{recording_ids[EN]}/clip"
    start, end = 4.72, 9.37
    response = client.get(path, params={"start": start, "end": end, "format": "wav"})
    assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
    samples, rate = wav_samples(response.content)
    assert samples.size / rate == pytest.approx(end - start, abs=1 / rate)
    original = decode_audio(str(DEMO / EN), sampling_rate=rate)[int(start * rate): int(end * rate)]
    assert np.max(np.abs(samples - original)) < 1e-3  # the same samples: cut where asked, not at a keyframe

    for fmt, media_type in (("ogg", "audio/ogg"), ("mp3", "audio/mpeg")):
        encoded = client.get(path, params={"start": start, "end": end, "format": fmt})
        assert encoded.headers["content-type"] == media_type
        assert decode_audio(io.BytesIO(encoded.content)).size / 16_000 == pytest.approx(end - start, abs=0.06)

    with_margin = client.get(path, params={"start": start, "end": end, "format": "wav", "margin": 0.25})
    assert wav_samples(with_margin.content)[0].size / rate == pytest.approx(end - start + 0.5, abs=1 / rate)
    assert with_margin.headers["x-clip-start"] == "4.470"
    at_the_start = client.get(path, params={"start": 0.1, "end": 1.0, "format": "wav", "margin": 0.25})
    assert at_the_start.headers["x-clip-start"] == "0.000"
    assert wav_samples(at_the_start.content)[0].size / rate == pytest.approx(1.25, abs=1 / rate)


@pytest.mark.parametrize("params, status", [
    ({"start": 5, "end": 5}, 400), ({"start": 500, "end": 501}, 400), ({"start": 0, "end": 700}, 400),
    ({"start": -1, "end": 2}, 422), ({"start": 1}, 422), ({"start": 1, "end": 2, "format": "flac"}, 422),
    ({"start": 1, "end": 2, "margin": -1}, 422),
])
def test_clip_rejects_bad_spans(client, recording_ids, params, status):
    response = client.get(f"/recordings/{recording_ids[EN]}/clip", params=params)
    assert response.status_code == status and response.json()["detail"]


def test_no_clip_or_media_for_a_transcript_alone(client, recording_ids):
    for path in ("clip?start=1&end=2", "media"):
        response = client.get(f"/recordings/{recording_ids[KO]}/{path}")
        assert response.status_code == 404 and "imported from a transcript" in response.json()["detail"]


def test_media_supports_range_requests(client, recording_ids):
    original = (DEMO / EN).read_bytes()
    path = f"/recordings/{recording_ids[EN]}/media"
    whole = client.get(path)
    assert whole.status_code == 200 and whole.content == original
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "audio/ogg"
    first = client.get(path, headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and first.headers["content-range"] == f"bytes 0-99/{len(original)}"
    assert first.content == original[:100]
    tail = client.get(path, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == original[-50:]
    assert client.get(path, headers={"Range": f"bytes={len(original)}-"}).status_code == 416


# -- who may write ---------------------------------------------------------------------------------
def test_write_endpoints_need_the_key(app, anonymous, tmp_path):
    wav = cut_wav(tmp_path, EN, 1, "x.wav").read_bytes()
    before = staged_files(app)
    writes = [("post", "/recordings", {"files": {"file": ("x.wav", wav)}}),
              ("post", "/recordings/import", {"files": {"transcript": ("x.srt", b"1\n00:00:00,000 --> 00:00:01,000\nhi\n")}}),
              ("patch", "/recordings/000000000000", {"json": {"title": "x"}}), ("delete", "/recordings/000000000000", {})]
    for method, path, body in writes:
        missing = anonymous.request(method, path, **body)
        assert missing.status_code == 401 and "API key" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = anonymous.request(method, path, headers={"X-API-Key": "guess"}, **body)
        assert wrong.status_code == 403 and wrong.json() == {"detail": "wrong API key"}
    bearer = anonymous.delete("/recordings/000000000000", headers={"Authorization": f"Bearer {API_KEY}"})
    assert bearer.status_code == 404
    assert staged_files(app) == before  # refused uploads leave nothing behind


def test_without_a_key_only_this_machine_may_write(app, client, monkeypatch):
    monkeypatch.setattr(app.state.backend.settings.http, "api_key", None)
    remote = TestClient(app, client=REMOTE, base_url="http://localhost")  # without a key, Host must name this machine
    assert remote.get("/health").json()["writes"] == "loopback-only"
    refused = remote.delete("/recordings/000000000000")
    assert refused.status_code == 403 and "same machine" in refused.json()["detail"]
    local = TestClient(app, client=("127.0.0.1", 40000), base_url="http://localhost")
    assert local.delete("/recordings/000000000000").status_code == 404


def test_reads_can_be_protected_too(app, anonymous, monkeypatch):
    monkeypatch.setattr(app.state.backend.settings.http, "protect_reads", True)
    assert anonymous.get("/search", params={"q": "city"}).status_code == 401
    assert anonymous.get("/recordings", headers={"X-API-Key": "guess"}).status_code == 403
    assert anonymous.get("/recordings", headers={"X-API-Key": API_KEY}).status_code == 200
    with_cookie = TestClient(app, client=REMOTE, cookies={"talksearch_key": API_KEY})  # what <audio> can send
    assert with_cookie.get("/stats").status_code == 200
    assert anonymous.get("/health").status_code == 200


# -- uploads that are refused ----------------------------------------------------------------------
@pytest.mark.parametrize("files, status, says", [
    ({"file": ("notes.txt", b"hello")}, 415, "unsupported file type"),
    ({"file": ("fake.wav", b"RIFF" + bytes(2000))}, 415, "cannot be decoded"),
    ({"title": (None, "no file")}, 422, "needs a file"),
    ({"other": ("a.wav", b"x")}, 422, "unexpected file"),
])
def test_upload_refusals(app, client, files, status, says):
    before = staged_files(app)
    response = client.post("/recordings", files=files)
    assert response.status_code == status and says in response.json()["detail"]
    assert staged_files(app) == before


@pytest.mark.parametrize("data", [{"language": "English"}, {"date": "next week"}, {"title": "x" * 301}])
def test_upload_metadata_is_validated(app, client, tmp_path, data):
    before = staged_files(app)
    wav = cut_wav(tmp_path, EN, 1, "a.wav").read_bytes()
    response = client.post("/recordings", files={"file": ("a.wav", wav)}, data=data)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == [*data]
    assert staged_files(app) == before


def test_a_glossary_whisper_could_not_hold_is_refused_and_nothing_kept(app, client, tmp_path):
    before = staged_files(app)
    wav = cut_wav(tmp_path, EN, 1, "a.wav").read_bytes()
    response = client.post("/recordings", files={"file": ("a.wav", wav)}, data={"hotwords": "Kazan, " * 40})
    assert response.status_code == 400 and "Whisper holds at most" in response.json()["detail"]
    assert staged_files(app) == before


def test_a_glossary_that_fits_alone_but_not_beside_the_servers_is_refused(app, client, tmp_path, monkeypatch):
    monkeypatch.setattr(app.state.backend.settings.whisper, "hotwords", "Kazan, " * 20)
    before = staged_files(app)
    wav = cut_wav(tmp_path, EN, 1, "a.wav").read_bytes()
    response = client.post("/recordings", files={"file": ("a.wav", wav)}, data={"hotwords": "Sejong, " * 10})
    assert response.status_code == 400 and "together with the server's own" in response.json()["detail"]
    assert staged_files(app) == before


def test_upload_must_be_multipart(client):
    response = client.post("/recordings", content=b"RIFF....", headers={"content-type": "audio/wav"})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["detail"]


def test_oversized_uploads_are_413(app, client, monkeypatch):
    monkeypatch.setattr(app.state.backend.settings.http, "max_upload_mb", 1)
    before = staged_files(app)
    declared = client.post("/recordings", files={"file": ("big.wav", bytes(1_200_000))})
    assert declared.status_code == 413 and "1 MB" in declared.json()["detail"]
    boundary = "talksearchboundary"

    def streamed():  # chunked: no Content-Length to refuse early, so the limit stops the stream
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'.encode()
        for _ in range(20):
            yield bytes(100_000)
        yield f"\r\n--{boundary}--\r\n".encode()
    chunked = client.post("/recordings", content=streamed(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert chunked.status_code == 413
    assert staged_files(app) == before


@pytest.mark.parametrize("name, body, says", [
    ("talk.docx", b"PK..", "unsupported file type"),
    ("broken.srt", b"1\nthis is not a time line\nhello\n", "not a valid SRT"),
    ("empty.json", b'{"segments": []}', "holds no segments"),
])
def test_import_refusals(app, client, name, body, says):
    before = staged_files(app)
    response = client.post("/recordings/import", files={"transcript": (name, body)})
    assert response.status_code == 415 and says in response.json()["detail"]
    assert str(media_dir(app)) not in response.json()["detail"]  # server paths stay private
    assert staged_files(app) == before


# -- jobs ------------------------------------------------------------------------------------------
def test_upload_job_from_upload_to_searchable_and_deleted(app, client, tmp_path, monkeypatch):
    transcriber, glossaries = app.state.backend.service.transcriber, []
    decode = transcriber._decode  # the real one, watched: which glossary each pass was given

    def watched(*args, **kwargs):
        glossaries.append((args[3], kwargs.get("hotwords")))
        return decode(*args, **kwargs)
    monkeypatch.setattr(transcriber, "_decode", watched)
    wav = cut_wav(tmp_path, "en_ai_urban_services.opus", 0, "ai talk.wav").read_bytes()
    accepted = client.post("/recordings", files={"file": ("ai talk.wav", wav, "audio/wav")},
                           data={"title": "AI for city services", "speaker": "Priya Raman", "date": "2026-03-20", "event": "",
                                 "hotwords": " Priya Raman,  5G "})
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["state"] in ("queued", "running") and job["kind"] == "upload" and job["filename"] == "ai talk.wav"
    assert accepted.headers["location"] == f"/jobs/{job['id']}"

    searched_while_running = False
    while job["state"] in ("queued", "running"):
        if job["state"] == "running" and not searched_while_running:
            assert client.get("/search", params={"q": "5G pilots", "k": 1}).status_code == 200
            searched_while_running = True
        time.sleep(0.1)
        job = client.get(f"/jobs/{job['id']}").json()
    assert job["state"] == "done", job["error"]
    assert searched_while_running and job["progress"] == 1.0 and job["error"] is None and job["note"] is None
    assert ("transcribe", "Priya Raman, 5G") in glossaries  # the upload's own hot words reached Whisper
    recording_id = job["recording_id"]

    detail = client.get(f"/recordings/{recording_id}").json()
    said = (detail["title"], detail["speaker"], detail["date"], detail["event"])
    assert said == ("AI for city services", "Priya Raman", "2026-03-20", None)
    assert "artificial intelligence" in " ".join(s["text"] for s in detail["segments"]).lower()
    hits = client.get("/search", params={"q": "artificial intelligence improves city services", "recording": recording_id}).json()
    assert hits and hits[0]["recording_id"] == recording_id
    assert client.get(f"/recordings/{recording_id}/media").content == wav
    assert detail["source"] == "ai talk.wav"  # the name it was sent under, never a server path
    kept = media_dir(app) / stored_name(hashlib.sha256(wav).hexdigest(), "ai talk.wav")
    assert kept.is_file()

    again = wait_for_job(client.get, client.post("/recordings", files={"file": ("copy.wav", wav)}).json()["id"])
    assert again["state"] == "done" and again["recording_id"] == recording_id and "already in the library" in again["note"]
    assert kept.is_file()
    assert [j["id"] for j in client.get("/jobs", params={"limit": 2}).json()] == [again["id"], job["id"]]

    deleted = client.delete(f"/recordings/{recording_id}")
    assert deleted.json() == {"id": recording_id, "title": "AI for city services", "deleted": True}
    assert client.get(f"/recordings/{recording_id}").status_code == 404
    assert not kept.exists()
    assert client.delete(f"/recordings/{recording_id}").status_code == 404


def test_import_job(client):
    vtt = ("WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nГородской центр мониторинга отразил атаки.\n\n"
           "00:00:04.500 --> 00:00:08.000\nДанные жителей шифруются.\n").encode()
    english = b"1\n00:00:01,000 --> 00:00:04,000\nThe city monitoring centre repelled attacks.\n"
    files = {"transcript": ("security.vtt", vtt), "translation": ("security.en.srt", english)}
    accepted = client.post("/recordings/import", files=files, data={"title": "Кибербезопасность", "language": "ru"})
    assert accepted.status_code == 202, accepted.text
    job = wait_for_job(client.get, accepted.json()["id"])
    assert job["state"] == "done" and job["kind"] == "import"
    detail = client.get(f"/recordings/{job['recording_id']}").json()
    assert detail["has_media"] is False and detail["media_url"] is None and detail["language"] == "ru"
    texts = [s["text"] for s in detail["segments"]]
    assert texts == ["Городской центр мониторинга отразил атаки.", "Данные жителей шифруются."]
    assert detail["segments"][0]["translation"] == "The city monitoring centre repelled attacks."
    hits = client.get("/search", params={"q": "monitoring centre attacks", "recording": job["recording_id"]}).json()
    assert hits and hits[0]["clip_url"] is None
    assert client.delete(f"/recordings/{job['recording_id']}").status_code == 200


def test_edit_recording_metadata(client, anonymous, recording_ids):
    path = f"/recordings/{recording_ids[EN]}"
    before = client.get(path).json()
    edited = client.patch(path, json={"title": "5G pilots, Riverside", "session": "Connectivity"})
    assert edited.status_code == 200
    now = edited.json()
    assert (now["title"], now["session"], now["speaker"]) == ("5G pilots, Riverside", "Connectivity", before["speaker"])
    assert client.get("/search", params={"q": "5G", "k": 1}).json()[0]["title"] == "5G pilots, Riverside"
    assert client.patch(path, json={"date": "17/03/2026"}).status_code == 422
    assert client.patch(path, json={"source": "/etc/passwd"}).status_code == 422
    assert anonymous.patch(path, json={"title": "x"}).status_code == 401
    assert client.patch("/recordings/000000000000", json={"title": "x"}).status_code == 404
    restored = client.patch(path, json={"title": before["title"], "session": before["session"]}).json()
    assert restored["title"] == before["title"]


def test_shutdown_fails_the_running_job_at_its_next_progress_report(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    ended, started = [], threading.Event()

    def slow(progress):
        started.set()
        for step in range(10_000):
            progress(step / 10_000)
            time.sleep(0.01)

    runner = JobRunner(store, ended.append)
    running = runner.submit("upload", "long.wav", [], slow)
    waiting = runner.submit("upload", "next.wav", [], slow)
    assert started.wait(10)
    cut_short = runner.shutdown()
    assert [j.id for j in cut_short] == [waiting.id]
    for job in (running, waiting):
        assert (store.get(job.id).state, store.get(job.id).error) == (FAILED, SHUT_DOWN)
    assert [j.id for j in ended] == [running.id]  # the queued job never ran; the caller tidies it




# -- the page and the description -----------------------------------------------------------------
def test_web_page_and_assets(client):
    page = client.get("/")
    assert page.headers["content-type"] == "text/html; charset=utf-8" and '<meta charset="utf-8">' in page.text
    for asset in ("static/app.js", "static/style.css"):
        assert client.get(f"/{asset}").status_code == 200 and f'"{asset}"' in page.text


def test_openapi_documents_every_endpoint(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    operations = {(method.upper(), path): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert set(operations) == {
        ("GET", "/health"), ("GET", "/stats"), ("GET", "/search"), ("POST", "/search"), ("GET", "/recordings"),
        ("POST", "/recordings"), ("POST", "/recordings/import"), ("GET", "/recordings/{recording_id}"),
        ("PATCH", "/recordings/{recording_id}"), ("DELETE", "/recordings/{recording_id}"),
        ("GET", "/recordings/{recording_id}/transcript"), ("GET", "/recordings/{recording_id}/clip"),
        ("GET", "/recordings/{recording_id}/media"), ("GET", "/recordings/{recording_id}/speakers"),
        ("PATCH", "/recordings/{recording_id}/speakers"),
        ("GET", "/jobs"), ("GET", "/jobs/{job_id}")}
    for (method, path), op in operations.items():
        success = op["responses"].get("200") or op["responses"]["202"]
        assert success.get("content"), f"{method} {path} documents no response body"
        for content in success["content"].values():
            assert content.get("schema"), f"{method} {path} has a response without a schema"
    upload_form = operations[("POST", "/recordings")]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload_form["required"] == ["file"] and "speaker" in upload_form["properties"]
    # every schema the document refers to is in it, so a client generated from it resolves them all
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs and refs <= set(spec["components"]["schemas"])


def test_speakers_of_a_one_voice_talk_are_listed_named_and_filtered_on(client, recording_ids):
    """The demo talk is one synthetic voice: diarized at ingest (real encoder) into one speaker."""
    rid = recording_ids["en_5g_pilots.opus"]
    voices = client.get(f"/recordings/{rid}/speakers").json()
    assert [v["label"] for v in voices] == ["SPEAKER_1"] and voices[0]["seconds"] > 20 and voices[0]["quote"]
    assert client.patch(f"/recordings/{rid}/speakers", json={"speaker": "SPEAKER_9", "name": "X"}).status_code == 404
    try:
        named = client.patch(f"/recordings/{rid}/speakers", json={"speaker": "SPEAKER_1", "name": "Elena Ivanova"})
        assert named.status_code == 200 and named.json()[0]["name"] == "Elena Ivanova"
        segments = client.get(f"/recordings/{rid}").json()["segments"]
        assert {s["speaker"] for s in segments} == {"Elena Ivanova"} and {s["speaker_label"] for s in segments} == {"SPEAKER_1"}
        hits = client.get("/search", params={"q": "base stations", "speaker": "elena ivanova"}).json()
        assert hits and all(h["recording_id"] == rid and h["speaker"] == "Elena Ivanova" for h in hits)
        assert "<v Elena Ivanova>" in client.get(f"/recordings/{rid}/transcript", params={"format": "vtt"}).text
    finally:
        client.patch(f"/recordings/{rid}/speakers", json={"speaker": "SPEAKER_1", "name": None})
