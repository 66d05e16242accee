"""What comes in over HTTP is checked before any job starts: media must be real audio in a known
container and codec, a transcript must hold sane values, and the answer names each file as the
client sent it, never where the server keeps it. The app here never starts its models: every
request is refused before a job would need them. An upload's recording is titled and shown by the
name it was sent under, and job errors never show the media folder either."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import Settings
from api.service import Talksearch, stored_name
from api.uploads import check_audio
from core.errors import MediaError, TalksearchError, TranscriptFormatError
from index.library import SearchRequest
from ingest.records import Metadata
from tests.helpers import API_KEY, DEMO

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


# -- uploads are known by the names they were sent under ---------------------------------------------
@pytest.fixture
def service(models, tmp_path) -> Talksearch:
    """A fresh library, with the session's models: opening a new library asks e5 for its vector size."""
    service = Talksearch(Settings.from_env({}, library=tmp_path / "library"))
    service.media_dir.mkdir(parents=True)
    return service


def stage(service: Talksearch, body: bytes, filename: str) -> Path:
    """``body`` where an upload of ``filename`` is kept: in the media folder, under its content hash."""
    staged = service.media_dir / stored_name(hashlib.sha256(body).hexdigest(), filename)
    staged.write_bytes(body)
    return staged


def test_job_errors_name_uploads_as_sent_and_never_show_the_media_folder(service):
    script = stage(service, CONCAT, "talk.wav")
    with pytest.raises(MediaError, match=r"^talk\.wav: not an audio or video file talksearch reads"):
        service.ingest(script, names={script: "talk.wav"})
    broken = stage(service, b'{"segments": [{"start": 3, "end": 1, "text": "Hello."}]}', "talk.json")
    with pytest.raises(TranscriptFormatError, match=r"^talk\.json: segment 1: ends before it starts"):
        service.import_transcript(broken, names={broken: "talk.json"})
    for unnamed in (lambda: service.ingest(script), lambda: service.import_transcript(broken)):
        with pytest.raises(TalksearchError) as refused:
            unnamed()  # without the names sent, files are named as stored, still not by where they are
        assert str(refused.value).startswith((f"{script.name}: ", f"{broken.name}: "))
        assert str(service.media_dir) not in str(refused.value)


def test_an_upload_is_titled_and_shown_by_the_name_it_was_sent_under(service, tmp_path):
    cues = b"1\n00:00:01,000 --> 00:00:05,000\nFive G pilots start in three districts this spring.\n"
    transcript, media = stage(service, cues, "briefing.srt"), stage(service, SPEECH.read_bytes(), "5G_pilots briefing.opus")
    added = service.import_transcript(transcript, media, names={transcript: "briefing.srt", media: "5G_pilots briefing.opus"})
    recording = service.by_id(added.recording.id)
    assert (recording.title, recording.source) == ("5G pilots briefing", "5G_pilots briefing.opus")
    assert service.media_path(recording) == media
    assert service.search(SearchRequest("pilots in three districts", 1))[0].source == "5G_pilots briefing.opus"

    alone = stage(service, cues.replace(b"spring", b"autumn"), "notes_from the desk.srt")
    titled = service.import_transcript(alone, meta=Metadata(title="Desk notes"), names={alone: "notes_from the desk.srt"})
    assert (titled.recording.title, titled.recording.source) == ("Desk notes", "notes_from the desk.srt")
    by_path = tmp_path / "kept_by_the user.srt"
    by_path.write_bytes(cues.replace(b"spring", b"winter"))
    local = service.import_transcript(by_path).recording  # added by path, as the command line does
    assert (local.title, local.source) == ("kept by the user", str(by_path.resolve()))

    service.delete(recording.id)
    assert not media.exists() and by_path.exists()
