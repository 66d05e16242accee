"""What comes in over HTTP is checked before any job starts: media must be real audio in a known
container and codec, and the answer names the file as the client sent it, never where the server
keeps it. The app here never starts its models: every request is refused before a job would need them."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import Settings
from api.uploads import check_audio
from api_fixtures import API_KEY, DEMO

SPEECH = DEMO / "en_5g_pilots.opus"


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> FastAPI:
    app = create_app(Settings.from_env({}, library=tmp_path_factory.mktemp("library"), api_key=API_KEY))
    app.state.backend.media_dir.mkdir(parents=True)
    return app


@pytest.fixture(scope="module")
def client(app) -> TestClient:
    return TestClient(app, headers={"X-API-Key": API_KEY})


def media_dir(app) -> Path:
    return app.state.backend.media_dir


def refused(app, client, path: str, files: dict) -> str:
    """The detail of a 415 that left nothing in the media folder and shows no server path."""
    before = set(media_dir(app).iterdir())
    response = client.post(path, files=files)
    assert response.status_code == 415, response.text
    detail = response.json()["detail"]
    assert str(media_dir(app)) not in detail and "\n" not in detail
    assert set(media_dir(app).iterdir()) == before
    return detail


# -- media -------------------------------------------------------------------------------------------
CONCAT = b"ffconcat version 1.0\n" + b"file en_5g_pilots.opus\n" * 20
PLAYLIST = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nen_5g_pilots.opus\n#EXT-X-ENDLIST\n"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde\x00\x00\x00"
       b"\x0cIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x9a\xa0\xa5\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.mark.parametrize("name, body, says", [
    ("talk.wav", CONCAT, "talk.wav: not an audio or video file talksearch reads"),
    ("talk.mp3", PLAYLIST, "talk.mp3: cannot be decoded as audio"),
    ("talk.wav", PNG, "talk.wav: not an audio or video file talksearch reads"),
    ("talk.flac", b"Minutes of the meeting, not a recording.\n" * 40, "talk.flac: decodes to no audio"),
])
def test_uploads_that_are_not_audio_are_refused(app, client, name, body, says):
    (media_dir(app) / SPEECH.name).write_bytes(SPEECH.read_bytes())  # what a script could point at
    try:
        assert refused(app, client, "/recordings", {"file": (name, body)}).startswith(says)
        assert refused(app, client, "/recordings/import", {
            "transcript": ("talk.srt", b"1\n00:00:01,000 --> 00:00:04,000\nHello.\n"), "media": (name, body)}).startswith(says)
    finally:
        (media_dir(app) / SPEECH.name).unlink()


def test_real_audio_passes_the_upload_check():
    assert check_audio(SPEECH, "talk.opus") is None


# -- transcripts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, body, says", [
    ("talk.json", b'{"segments": [{"start": NaN, "end": 2, "text": "Hello."}]}', "talk.json: not valid JSON (NaN is not a JSON number"),
    ("talk.json", b'{"segments": [{"start": 1, "end": 1e308, "text": "Hello."}]}', "talk.json: segment 1: end 1e+308 s is not between"),
    ("talk.json", b'{"segments": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "talk.json: JSON nested too deeply"),
    ("talk.json", b'{"segments": [{"start": 3, "end": 1, "text": "Hello."}]}', "talk.json: segment 1: ends before it starts"),
    ("talk.json", b'{"language": "xx", "segments": [{"start": 1, "end": 2, "text": "Hello."}]}',
     "talk.json: language: unknown language code 'xx'"),
    ("talk.srt", b"1\n99999999:00:00,000 --> 99999999:00:01,000\nHello.\n", "talk.srt: cue 1: start 3.6e+11 s is not between"),
])
def test_imported_transcripts_with_bad_values_are_refused(app, client, name, body, says):
    assert refused(app, client, "/recordings/import", {"transcript": (name, body)}).startswith(says)


def test_a_bad_translation_file_is_named_as_sent(app, client):
    files = {"transcript": ("talk.srt", b"1\n00:00:01,000 --> 00:00:04,000\nHello.\n"),
             "translation": ("talk.en.srt", b"1\n00:00:04,000 --> 00:00:01,000\nHello.\n")}
    assert refused(app, client, "/recordings/import", files) == "talk.en.srt: cue 1: ends before it starts (4 s to 1 s)"
