"""What every request passes before it is routed, on the real app and library.

Without an API key, a web page on another site must not reach the library through a local browser:
it cannot address the server by its own DNS name pointed at 127.0.0.1 (DNS rebinding), nor send it
changes (CSRF), while the page served here, curl and the CLI keep working. With a key, the key is
the protection. JSON bodies are refused past their limit before they are read, a 422 never echoes
the values sent, and a 405 lists every method the path takes."""
from __future__ import annotations

from dataclasses import replace

import anyio
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import Settings
from tests.helpers import DEMO, KOREAN, talk_metadata

HERE = "http://127.0.0.1:8000"  # where the page served by this app was loaded from
SRT = (DEMO / KOREAN).read_bytes()
CHUNK = 16 * 1024


@pytest.fixture(scope="module")
def app(demo_service):
    """No key configured: settings of its own over the shared library and models."""
    return create_app(demo_service.settings.changed(api_key=None), demo_service)


@pytest.fixture(scope="module")
def local(app):
    """A client on this machine that addresses the server as the page served here does."""
    with TestClient(app, base_url=HERE, client=("127.0.0.1", 50000)) as started:
        yield started


@pytest.fixture(scope="module")
def victim(demo_service, tmp_path_factory) -> str:
    """A recording of its own (other bytes than the shared Korean one), so the writes that must be
    refused could not harm the recordings other tests read."""
    copy = tmp_path_factory.mktemp("guarded") / "guarded.srt"
    copy.write_text(SRT.decode() + "\n9\n00:01:01,000 --> 00:01:02,000\n감사합니다\n", encoding="utf-8")
    added = demo_service.import_transcript(copy, None, replace(talk_metadata(KOREAN), title="guarded copy"))
    assert added.added
    yield added.recording.id
    if demo_service.by_id(added.recording.id) is not None:
        demo_service.delete(added.recording.id)


@pytest.fixture
def settings(app) -> Settings:
    return app.state.backend.settings


def staged(app) -> set[str]:
    return {p.name for p in app.state.backend.media_dir.iterdir()}


# -- DNS rebinding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:8000",
                                  "[::1]", "[::1]:8000"])
def test_names_of_this_machine_are_answered(local, host):
    assert local.get("/stats", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io", ""])
def test_other_names_are_refused_without_a_key(app, local, victim, host):
    for method, path in [("GET", "/search?q=city"), ("GET", "/"), ("GET", "/static/app.js"), ("GET", "/openapi.json"),
                         ("DELETE", f"/recordings/{victim}")]:
        refused = local.request(method, path, headers={"Host": host})
        assert refused.status_code == 400, (method, path)
        assert "is not a name of this server" in refused.json()["detail"] and "\n" not in refused.json()["detail"]
    assert local.get(f"/recordings/{victim}").status_code == 200  # the DELETE above deleted nothing


def test_allowed_hosts_add_names_and_turn_the_check_on_with_a_key(local, settings, monkeypatch):
    assert Settings.from_env({"TALKSEARCH_ALLOWED_HOSTS": " Talks.LAN, archive.example ,"}).http.allowed_hosts == (
        "talks.lan", "archive.example")
    monkeypatch.setattr(settings.http, "allowed_hosts", ("talks.lan",))
    assert local.get("/stats", headers={"Host": "talks.lan:8000"}).status_code == 200
    assert local.get("/stats", headers={"Host": "evil.example"}).status_code == 400

    monkeypatch.setattr(settings.http, "api_key", "a-key")
    assert local.get("/stats", headers={"Host": "evil.example"}).status_code == 400
    assert local.get("/stats", headers={"Host": "localhost"}).status_code == 200
    monkeypatch.setattr(settings.http, "allowed_hosts", ())
    assert local.get("/stats", headers={"Host": "evil.example"}).status_code == 200  # the key protects


# -- cross-site writes -----------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:3000"},  # same site, another origin
                                     {"Sec-Fetch-Site": "cross-site"}])
def test_writes_from_another_sites_page_are_refused_without_a_key(app, local, victim, headers):
    before = staged(app)
    for method, path, body in [("POST", "/recordings/import", {"files": {"transcript": ("talk.srt", SRT)}}),
                               ("POST", "/recordings", {"files": {"file": ("talk.wav", b"RIFF")}}),
                               ("PATCH", f"/recordings/{victim}", {"json": {"title": "pwned"}}),
                               ("DELETE", f"/recordings/{victim}", {})]:
        refused = local.request(method, path, headers=headers, **body)
        assert refused.status_code == 403, (method, path)
        assert "another site's page" in refused.json()["detail"]
    assert local.get(f"/recordings/{victim}").json()["title"] == "guarded copy"
    assert staged(app) == before
    assert local.get("/search", params={"q": "city"}, headers=headers).status_code == 200  # reads are not changes


def test_the_page_served_here_and_clients_without_origin_may_write(local, victim):
    same_origin = {"Origin": HERE, "Sec-Fetch-Site": "same-origin"}
    edited = local.patch(f"/recordings/{victim}", json={"speaker": "page"}, headers=same_origin)
    assert edited.status_code == 200 and edited.json()["speaker"] == "page"
    assert local.patch(f"/recordings/{victim}", json={"speaker": "curl"}).json()["speaker"] == "curl"
    typed_in = local.patch(f"/recordings/{victim}", json={"speaker": "bar"}, headers={"Sec-Fetch-Site": "none"})
    assert typed_in.status_code == 200


def test_with_a_key_the_key_is_the_protection(local, settings, victim, monkeypatch):
    monkeypatch.setattr(settings.http, "api_key", "a-key")
    cross = {"Origin": "http://evil.example"}
    assert local.patch(f"/recordings/{victim}", json={"title": "x"}, headers=cross).status_code == 401
    keyed = local.patch(f"/recordings/{victim}", json={"title": "guarded copy"}, headers={**cross, "X-API-Key": "a-key"})
    assert keyed.status_code == 200


# -- bodies ----------------------------------------------------------------------------------------
def pulled_by_app(app, method: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """Drive the app as a server does with a body that never ends: (status, bytes the app read)."""
    pulled, status = 0, 0

    async def receive() -> dict:
        nonlocal pulled
        pulled += CHUNK
        return {"type": "http.request", "body": b"a" * CHUNK, "more_body": True}

    async def send(message: dict) -> None:
        nonlocal status
        status = message.get("status", status)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in {"Host": "127.0.0.1:8000", **headers}.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    anyio.run(app, scope, receive, send)
    return status, pulled


@pytest.mark.parametrize("method, path", [("POST", "/search"), ("PATCH", "/recordings/000000000000")])
def test_json_bodies_are_refused_past_the_limit_before_being_read(app, local, method, path):
    declared = local.request(method, path, content=b"{}", headers={"Content-Length": str(200 * 2**20)})
    assert declared.status_code == 413 and "64 KiB (TALKSEARCH_MAX_JSON_KB)" in declared.json()["detail"]
    assert pulled_by_app(app, method, path, {"Content-Length": str(200 * 2**20)}) == (413, 0)
    status, pulled = pulled_by_app(app, method, path, {"Content-Type": "application/json"})  # chunked, endless
    assert status == 413 and 64 * 1024 < pulled <= 64 * 1024 + CHUNK


def test_the_json_limit_is_a_setting_and_spares_uploads(app, local, settings, monkeypatch):
    assert local.post("/search", json={"q": "city", "speaker": "x" * 60_000}).status_code == 200
    monkeypatch.setattr(settings.http, "max_json_kb", 1)
    assert local.post("/search", json={"q": "city", "speaker": "x" * 2000}).status_code == 413
    before = staged(app)
    upload = local.post("/recordings", files={"file": ("big.wav", bytes(100_000))})  # over 1 KiB: its own limit applies
    assert upload.status_code == 415 and "cannot be decoded" in upload.json()["detail"]
    assert staged(app) == before


def test_validation_errors_name_the_field_but_never_echo_the_value(local):
    secret = "s3cret-" + "x" * 500
    for response in (local.post("/search", json={"q": "city", "k": secret}),
                     local.get("/search", params={"q": "city", "k": secret}),
                     local.patch("/recordings/000000000000", json={"title": "x", "source": secret}),
                     local.post("/recordings", files={"file": ("a.wav", b"RIFF")}, data={"language": secret})):
        assert response.status_code == 422 and "s3cret" not in response.text
        assert [set(error) for error in response.json()["detail"]] == [{"loc", "msg", "type"}]
    assert local.post("/search", json={"q": "city", "k": secret}).json()["detail"][0]["loc"] == ["body", "k"]


# -- methods ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path, allowed", [
    ("OPTIONS", "/recordings/000000000000", "DELETE, GET, PATCH"), ("PUT", "/recordings/000000000000", "DELETE, GET, PATCH"),
    ("OPTIONS", "/recordings", "GET, POST"), ("DELETE", "/search", "GET, POST"), ("OPTIONS", "/health", "GET"),
])
def test_405_allows_every_method_of_the_path(local, method, path, allowed):
    response = local.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allowed


def test_a_single_valued_parameter_given_twice_is_refused(local):
    refused = local.get("/jobs", params=[("limit", "oops"), ("limit", "3")])
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "limit"]
    assert local.get("/jobs", params={"limit": 3}).status_code == 200
