"""Damaged files and concurrent writers: the library notices, reports (``check``), repairs what it
can (``check --repair``, and at open), and two processes writing at once lose nothing.
Small vectors and the hashing embedder keep these fast; killed real ingests are in test_crash.py."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from index.library import Library
from index.backends import open_store
from index.store import EmbeddedStore, StoreError
from index.vectors import ORIGINAL, VectorSettings, vector_id
from index.writelock import LibraryBusyError
from tests.helpers import DIM, ROOT, add, add_recording, said, unit

TOPICS = {"lights": "smart traffic lights at every intersection", "water": "water meters report leaks at night",
          "buses": "electric buses charge at the depot", "parks": "sensors count visitors in city parks"}
TRAMS = "new trams on the river line"


@pytest.fixture
def library(tmp_path, hashing_embedder):
    library = Library(tmp_path / "lib", hashing_embedder)
    for rid, text in TOPICS.items():
        add(library, rid, said("en", [text]))
    return library


def reopened(library: Library) -> Library:
    return Library(library.location, library.embedder)


def found(library: Library, rid: str, text: str) -> bool:
    return any(hit.recording_id == rid for hit in library.search(text, k=1, mode="dense"))


def added_segment(library: Library, rid: str, text: str) -> list[Path]:
    """Add a talk; the files of the vector segment its write made (each write makes one)."""
    before = set(library.store.catalog.segments())
    add(library, rid, said("en", [text]))
    [name] = set(library.store.catalog.segments()) - before
    return sorted((library.location / "vectors").glob(f"{name}.*"))


@pytest.mark.parametrize("damage", ["deleted", "truncated", "wrong shape"])
def test_a_damaged_vector_file_is_reported_set_aside_and_its_chunks_re_embedded(library, damage):
    ids_file, vec_file = added_segment(library, "trams", TRAMS)
    if damage == "deleted":
        vec_file.unlink()
    elif damage == "truncated":
        vec_file.write_bytes(vec_file.read_bytes()[:200])
    else:
        np.save(vec_file, np.zeros((1, DIM), dtype=np.float16))
    checked = reopened(library)
    problems = [f.problem for f in checked.check()]
    assert any("unreadable" in p for p in problems) and any("1 chunks have no vectors" in p for p in problems)
    assert str(library.location) not in " ".join(problems)  # no server paths in what users see
    assert ids_file.exists()  # checking changes nothing

    repaired = reopened(library)  # opening for use repairs: nothing is searched without its vectors
    assert all(found(repaired, rid, text) for rid, text in {**TOPICS, "trams": TRAMS}.items())
    assert repaired.check() == []
    assert ids_file.name in {p.name for p in (library.location / "damaged").rglob("*")}


def test_check_finds_nothing_in_a_sound_library_and_repair_changes_nothing(library):
    before = sorted(library.store.catalog.segments())
    assert library.check() == [] and library.check(repair=True) == []
    assert sorted(library.store.catalog.segments()) == before


def test_vectors_of_chunks_the_catalog_lacks_are_buried(library):
    store = library.store
    ghost = max(c.id for rid in TOPICS for c in store.records.chunks_of(rid)) + 50
    name, rows = store.vectors.write(np.array([vector_id(ghost, ORIGINAL)]), library.embedder.passages(["ghost"]))
    with store.catalog.transaction():  # a listed segment for a chunk no catalog row describes
        store.catalog.set_segments({name: rows}, [])
    checked = reopened(library)
    assert [f.problem for f in checked.check()] == ["1 chunks in the vector files are not in the catalog"]
    checked.check(repair=True)
    assert checked.check() == [] and ghost not in checked.store.vectors.chunk_ids()


def test_a_damaged_search_graph_is_set_aside_and_built_again(tmp_path):
    rng = np.random.default_rng(8)
    settings = VectorSettings(ann_min=60)
    store = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=settings)
    kept = unit(rng, 40)
    add_recording(store, "a", kept)
    add_recording(store, "b", unit(rng, 40))
    store.maintain()
    assert store.vectors.approximate
    graph = tmp_path / "lib" / "vectors" / "coarse.faiss"
    graph.write_bytes(graph.read_bytes()[:1000])
    again = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=settings)
    assert [f.problem.split(":")[0] for f in again.check()] == ["the saved search graph is unreadable"]
    assert again.vectors.search(kept[0], 1)[0][1] == pytest.approx(1.0, abs=1e-2)  # exact meanwhile
    assert again.repair() == [] and again.check() == [] and again.vectors.approximate
    assert again.vectors.search(kept[0], 1)[0][1] == pytest.approx(1.0, abs=1e-2)


def test_a_lost_keyword_index_is_rebuilt_at_open(library):
    for path in (library.location / "keywords").iterdir():
        path.unlink()
    again = reopened(library)
    assert [h.recording_id for h in again.search("electric buses", k=1, mode="lexical")] == ["buses"]


def test_a_damaged_catalog_is_one_clear_error(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "catalog.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="catalog .* is damaged .*restore it from a backup"):
        EmbeddedStore(tmp_path / "lib", DIM)


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)  # as the real lock does: a longer pid left by the last writer must not show through
os.write(fd, str(os.getpid()).encode())
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_waits_for_the_first_and_gives_up_with_a_clear_error(tmp_path):
    rng = np.random.default_rng(9)
    store = EmbeddedStore(tmp_path / "lib", DIM)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "lib" / "write.lock"), "30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        store.lock.wait = 0.5
        with pytest.raises(LibraryBusyError, match=f"being written by another process \\(pid {holder.pid}\\)"):
            add_recording(store, "a", unit(rng, 4))
        assert store.records.recording("a") is None and list((tmp_path / "lib" / "vectors").glob("seg-*")) == []
    finally:
        holder.kill()
        holder.wait()
    add_recording(store, "a", unit(rng, 4))  # the kernel dropped the dead holder's lock
    assert store.records.recording("a") is not None


WRITER = """
import sys
import numpy as np
sys.path.insert(0, {root!r})
from index.backends import open_store
from index.vectors import VectorSettings
from tests.helpers import DIM, add_recording
store = open_store(sys.argv[1], DIM, vector_settings=VectorSettings(ann_min=150, merge_fanout=2))
for i in range(int(sys.argv[3])):
    rid = f"{{sys.argv[2]}}{{i}}"
    add_recording(store, rid, np.load(sys.argv[4])[i])
    store.maintain()
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path, location):
    """Before the writer lock, a CLI import while the server ran lost its vectors at the server's
    next write. Two processes each add (and merge, and train the graph, or analyse the tables) at
    the same time, on either store: PostgreSQL's writers take turns on an advisory lock."""
    rng = np.random.default_rng(10)
    batches = {prefix: np.stack([unit(rng, 10) for _ in range(12)]) for prefix in ("p", "q")}
    writers = []
    for prefix, vectors in batches.items():
        np.save(tmp_path / f"{prefix}.npy", vectors)
        writers.append(subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER.format(root=str(ROOT))),
                                         str(location("lib")), prefix, "12", str(tmp_path / f"{prefix}.npy")],
                                        stderr=subprocess.PIPE, text=True))
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()
    store = open_store(location("lib"), DIM, vector_settings=VectorSettings(ann_min=150, merge_fanout=2))
    assert store.check() == []
    assert len(store.records.recordings()) == 24 and len(store.vectors) == 240
    for prefix, vectors in batches.items():
        for i, recording_vectors in enumerate(vectors):
            [(chunk_id, score, _)] = store.vectors.search(recording_vectors[0], 1)
            assert store.records.chunks([chunk_id])[chunk_id].recording_id == f"{prefix}{i}"
            assert score == pytest.approx(1.0, abs=1e-2)


def test_chunk_ids_are_never_reused(library):
    """A reused id would let stale vectors or keyword entries answer for another talk."""
    doomed = {c.id for c in library.store.records.chunks_of("parks")}
    library.delete("parks")
    add(library, "trams", said("en", [TRAMS]))
    assert min(c.id for c in library.store.records.chunks_of("trams")) > max(doomed)
    assert [h.recording_id for h in library.search(TRAMS, k=1)] == ["trams"]
