"""Chunk vectors: append-only segment files, a coarse in-memory index over them, exact rescoring.

Each chunk is embedded several ways ("views"): its whole text as spoken and in English, and
windows of two consecutive sentences inside it, again both ways. A chunk scores its best view;
a window view also says which seconds of the chunk matched. Each sentence is stored too, to
place a hit on the sentence closest in meaning without running the model at query time.

Why this shape (measured with ``python -m benchmarks.scale``; see the README):
- Writes cost what they add. A write is one new segment (``seg-*.ids.npy`` + ``seg-*.vec.npy``,
  float16, fsynced) that becomes live only when the catalog commits the row listing it: a crash
  before that leaves an unlisted file pair, removed at the next open. Deletes are tombstones in
  the catalog; ``compact`` merges small segments (tiers of 4x) and drops buried rows later.
  The old design rewrote one 1.5 GB FAISS file on every write at 100k chunks.
- Searches do not scan the library. Only the two whole-chunk views go into the coarse index
  (exact below ``VectorSettings.ann_min`` vectors; above, an HNSW graph over 4-bit codes, built
  when the library crosses the threshold, grown with each write, rebuilt when deletes hollow
  it); the coarse candidates' views, windows included, are then rescored exactly from the
  memory-mapped segments. Memory holds the coarse index (~464 bytes per chunk-level vector with
  4-bit codes, ~656 with 8-bit; about 1.6 such vectors a chunk) and a location per chunk; window
  vectors stay on disk, and only the pages a search reads are mapped in. An IVF (k-means lists)
  was tried first: cross-lingual queries sit far from the passages' clusters, and probing 5% of
  the lists found only 40% of the true top 10 on real e5 vectors of the shared Korean subtitles.
- Below the graph's threshold, and while a library that has outgrown it has no usable saved
  graph, the coarse index is exact and holds float16, as the segments do: the same candidates
  and scores as float32 (50k random 384-d vectors: identical top 400), a faster scan (1.7 against
  2.3 ms) and half the memory. Opening the million-chunk e5 + USE library without its graph held
  5,785 MB of its own before, 2,965 MB after.
- Filters are pushed down: a filter admitting few chunks is answered exactly over their views;
  otherwise the allowed chunks become a FAISS ID selector and the graph walk widens as the
  admitted share shrinks, so a selective filter still returns what exists.
- Other processes' writes are noticed: every write bumps a generation in the catalog, and each
  search re-reads the segment list and tombstones when it changed.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

MAX_VIEWS = 128
ORIGINAL, ENGLISH = 0, 1
# Views from here on are single sentences, as spoken: they place a hit's seconds, and rank it too
# (a one-line query matches its own sentence better than the pair of sentences around it: see
# index/indexing.py for the figures).
SENTENCE_VIEWS = 64


def in_english(view: int) -> bool:
    """Whether a view is the English rendering: the whole chunk's, or a window's (odd numbers)."""
    return view == ENGLISH or (view % 2 == 1 and view < SENTENCE_VIEWS)


# One query is one thread: OpenMP workers spinning for a 2 ms scan cost 100+ ms on a busy 2-core
# machine (measured: a flat search over 17k vectors took 141 ms), and requests run in parallel anyway.
# OpenMP's thread count is per thread, so each search sets it in the thread it runs in (the HTTP
# server's worker threads had the default: hybrid p50 53 ms there against 40 ms in the main thread).
SEARCH_THREADS = 1
faiss.omp_set_num_threads(SEARCH_THREADS)
# The BLAS pools (numpy's and faiss's OpenBLAS) are process-wide: held to one thread, the exact
# rescoring's matrix-vector products stop waking spinning workers. In the server's worker
# threads at 100k chunks, on a busy 2-core machine: search p50 41 → 19 ms.
threadpool_limits(SEARCH_THREADS, user_api="blas")


@dataclass(frozen=True)
class VectorSettings:
    """When the coarse index turns approximate, how hard it looks, and when segments merge."""

    # Below this many chunk-level vectors an exact scan is fast enough (~2 ms); above it, HNSW.
    ann_min: int = 50_000
    # HNSW graph degree and search breadth; recall@10 against exact search is measured in
    # benchmarks/scale.py on real e5 vectors.
    hnsw_m: int = 32
    ef_search: int = 512
    # Bits per dimension of the graph's codes (8 or 4). The graph only picks the candidates that
    # are then scored exactly from the segments, so coarse codes cost little and save much. On the
    # 367k whole-chunk vectors of a 224k-chunk synthetic library, share of the exact top 10 among
    # the 400 candidates a k=10 search takes, and bytes per vector (M 16 was worse at 4 bits):
    #   8 bits, ef 256 / 512: 0.947 / 0.975, 656 B;   4 bits: 0.935 / 0.971, 464 B (0.85 ms a walk)
    # On real e5 vectors (benchmarks/scale.py) recall@10 was 0.957 / 0.959 at ef 128 / 512 either way.
    hnsw_bits: int = 4
    # The graph holds this many leading numbers of each vector (None: all of them): with a companion
    # model, the main model's part, so the graph keeps its size and the companion counts when the
    # candidates are rescored (index/library.py sets it).
    graph_dimension: int | None = None
    # The graph is rebuilt when this share of its vectors belongs to deleted chunks.
    rebuild_dead_share: float = 0.2
    # A filter admitting at most this many chunks is answered exactly over their views.
    exact_subset: int = 4000
    # Coarse vectors fetched per chunk wanted, before rescoring every view of those chunks.
    coarse_factor: int = 2
    # Segments in one size tier (powers of this) before they are merged into one.
    merge_fanout: int = 4

    def __post_init__(self):
        if self.hnsw_bits not in (4, 8):
            raise ValueError(f"hnsw_bits is 8 or 4, not {self.hnsw_bits}")


@dataclass(frozen=True)
class View:
    """One embedded text of a chunk. ``chunk`` is a position in the list being added, or a
    chunk id once stored; window views (``view`` ≥ 2) carry their own span."""

    chunk: int
    view: int
    start: float
    end: float
    text: str
    language: str


def vector_id(chunk_id: int, view: int) -> int:
    return chunk_id * MAX_VIEWS + view


class Manifest(Protocol):
    """What the vector files need from the records store: the committed segment list, tombstones
    and a generation counter, all written in the records store's transactions."""

    def segments(self) -> dict[str, int]: ...
    def tombstones(self, after: int = 0) -> tuple[list[int], int]: ...
    def get_meta(self, key: str) -> str | None: ...


class _Segment:
    """One immutable file pair, memory-mapped: vector ids and float16 vectors, row for row.
    A chunk's views are consecutive rows."""

    def __init__(self, folder: Path, name: str, rows: int, dimension: int):
        """Raises OSError or ValueError when the files are missing, truncated or do not match
        what the manifest lists (rows) and the library holds (dimension)."""
        self.name = name
        self.number = -1  # given when loaded
        self.ids = np.load(folder / f"{name}.ids.npy", mmap_mode="r")
        self.vectors = np.load(folder / f"{name}.vec.npy", mmap_mode="r")
        # Rescoring reads a few rows of scattered chunks: without this hint each page fault read
        # ahead up to 128 kB of neighbours, which stayed resident (the server's file-backed memory
        # at 224k chunks reached ~1 GB after 240 searches).
        for array in (self.ids, self.vectors):
            if getattr(array, "_mmap", None) is not None:  # numpy's own mapping (empty files have none)
                array._mmap.madvise(mmap.MADV_RANDOM)
        if self.ids.shape != (rows,) or self.vectors.shape != (rows, dimension):
            raise ValueError(f"holds {self.ids.shape[0]} ids and {self.vectors.shape} vectors, "
                             f"the catalog lists {rows} rows of {dimension}-d")

    def __len__(self) -> int:
        return len(self.ids)


def _will_need(array: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> None:
    """Ask the kernel to read these rows of a mapped segment now, all at once: pages not yet in
    memory then arrive together instead of one page fault after another.

    At 1M chunks (8 GB of float16 views, mostly not in memory) rescoring ~400 candidates waited
    on their pages one fault at a time: in one process, after the library's pages were dropped
    from the cache, 150 new queries each, alternating, search p50 68.4 / 53.0 → 23.0 / 22.1 ms,
    rescoring 48.6 / 37.3 → 7.3 / 7.0 ms. With the pages cached the hints cost ~0.6 ms a search
    (17.0 → 17.5 ms p50); hinting the ids files too cost 1.8 ms and saved nothing more."""
    mapping = getattr(array, "_mmap", None)
    if mapping is None or not len(starts):
        return
    row = array.strides[0]
    base = array.offset % mmap.ALLOCATIONGRANULARITY  # where the rows begin inside the mapping
    first = (base + starts.astype(np.int64) * row) // mmap.PAGESIZE
    last = (base + (starts.astype(np.int64) + counts) * row - 1) // mmap.PAGESIZE
    order = np.argsort(first)
    first, last = first[order], last[order]
    new_run = np.r_[True, first[1:] > np.maximum.accumulate(last)[:-1] + 1]
    runs_first = first[new_run]
    runs_last = np.maximum.reduceat(last, np.flatnonzero(new_run))
    size = len(mapping)
    for lo, hi in zip(runs_first.tolist(), runs_last.tolist()):
        start = lo * mmap.PAGESIZE
        mapping.madvise(mmap.MADV_WILLNEED, start, min((hi + 1) * mmap.PAGESIZE, size) - start)


def _why(exc: Exception) -> str:
    """One line on why a file could not be read, without the library's absolute path."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc.__class__.__name__}: {Path(exc.filename).name}"
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment(folder: Path, dimension: int, blocks, rows: int) -> tuple[str, int]:
    """Stream (ids, vectors) blocks into a new segment of ``rows`` rows, fsynced; not live until a
    commit lists it. Returns its name and row count."""
    name = f"seg-{time.time_ns():020d}-{os.getpid()}"
    ids_file = np.lib.format.open_memmap(folder / f"{name}.ids.npy", "w+", np.int64, (rows,))
    vec_file = np.lib.format.open_memmap(folder / f"{name}.vec.npy", "w+", np.float16, (rows, dimension))
    at = 0
    for ids, vectors in blocks:
        ids_file[at: at + len(ids)] = ids
        vec_file[at: at + len(ids)] = vectors
        at += len(ids)
    for written in (ids_file, vec_file):
        written.flush()
        with open(written.filename, "rb+") as handle:
            os.fsync(handle.fileno())
    del ids_file, vec_file
    _fsync_dir(folder)
    return name, rows


class SegmentedVectors:
    """The vector role of the embedded store. Thread-safe: the API searches while a job writes."""

    def __init__(self, folder: Path, dimension: int, manifest: Manifest, settings: VectorSettings | None = None):
        self.settings = settings or VectorSettings()
        self.folder = folder
        self.dimension = dimension
        self.manifest = manifest
        self._lock = threading.RLock()
        folder.mkdir(parents=True, exist_ok=True)
        self._segments: dict[str, _Segment] = {}
        self._generation: str | None = None
        self._tombstone_seq = 0
        # Where each chunk's views are: segment name, first row, number of rows (grown on demand).
        # Arrays indexed by chunk id (a Python dict cost ~100 bytes a chunk): the number of the
        # segment holding its views (-1: none), its first row there, and how many rows.
        self._where_segment = np.zeros(0, dtype=np.int32)
        self._where_row = np.zeros(0, dtype=np.int64)
        self._where_count = np.zeros(0, dtype=np.int16)
        self._numbered: dict[int, _Segment] = {}
        self._live_chunks = 0
        self._coarse = None
        # float16 rows to float32 with FAISS's SIMD decoder: the same values as numpy's cast, 3x
        # faster (2,200 rows of 384, the views one search rescores: 0.34 against 1.0 ms; rescoring
        # at 100k chunks 1.94 → 1.60 ms a search, the whole search's change hidden in its noise).
        self._half = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16)
        self._dead: set[int] = set()  # coarse ids of deleted chunks still in the graph
        self._skip_dead = None  # a FAISS selector excluding them, made once per change (330k ids: 23 ms)
        self._saved_cover: set[str] = set()  # the segments the saved graph was written with
        self._deleted_during_build: list[int] | None = None
        # What could not be read: listed segments (name → why) and the saved graph (why).
        self.damaged: dict[str, str] = {}
        self.coarse_damage: str | None = None
        with self._lock:
            self._load_coarse()
            self.refresh()
            self._find_dead()

    # -- state -------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Live vectors (every view of every chunk that has not been deleted)."""
        with self._lock:
            return int(self._where_count.sum())

    @property
    def live_chunks(self) -> int:
        """Chunks whose views are readable and not deleted."""
        return self._live_chunks

    def coarse_size(self) -> int:
        with self._lock:
            return int(self._coarse.ntotal) if self._coarse is not None else 0

    @property
    def approximate(self) -> bool:
        """True once the coarse index is the graph (only graphs are saved; the flat one is rebuilt)."""
        return self._coarse is not None and isinstance(faiss.downcast_index(self._coarse.index), faiss.IndexHNSW)

    def refresh(self) -> None:
        """Bring this process's view up to the committed state (cheap when nothing changed)."""
        with self._lock:
            generation = self.manifest.get_meta("generation")
            if generation == self._generation and self._coarse is not None:
                return
            committed = self.manifest.segments()
            gone = [self._release(self._segments.pop(name)) for name in list(self._segments) if name not in committed]
            moved = np.concatenate(gone) if gone else np.zeros(0, dtype=np.int64)
            self.damaged = {name: why for name, why in self.damaged.items() if name in committed}
            for name, rows in committed.items():
                if name not in self._segments:
                    segment = self._open(name, rows)
                    if segment is not None:
                        self._load(segment, known=moved)
            lost = moved[self._where_segment[moved] < 0]  # released, and in no new segment
            if self._deleted_during_build is not None:
                self._deleted_during_build += lost.tolist()
            self._forget_coarse(lost)
            buried, self._tombstone_seq = self.manifest.tombstones(self._tombstone_seq)
            self._forget(buried)
            self._generation = generation

    def _open(self, name: str, rows: int) -> _Segment | None:
        """A listed segment, or None when its files are unreadable (noted in ``damaged``, and
        searched without until repaired). A file a merge in another process has just replaced
        is not damage: it is no longer listed."""
        try:
            segment = _Segment(self.folder, name, rows, self.dimension)
        except (OSError, ValueError) as exc:
            if name in self.manifest.segments():
                self.damaged[name] = _why(exc)
            return None
        self.damaged.pop(name, None)
        return segment

    def strays(self) -> list[Path]:
        """Segment files no committed row lists: a write that crashed before its commit.
        Only the holder of the writer lock may remove them (another writer's files are unlisted
        until it commits)."""
        live = set(self.manifest.segments())
        return [path for path in self.folder.glob("seg-*.npy") if path.name.split(".")[0] not in live]

    def set_aside(self, names: list[str], folder: Path) -> None:
        """Move the files of damaged segments (once unlisted) out of the way, for inspection."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            for suffix in (".ids.npy", ".vec.npy"):
                if (self.folder / f"{name}{suffix}").exists():
                    os.replace(self.folder / f"{name}{suffix}", folder / f"{name}{suffix}")

    def _grow(self, chunk_id: int) -> None:
        if chunk_id >= len(self._where_row):
            size = max(1024, 2 * chunk_id + 1)
            self._where_segment = np.concatenate([self._where_segment, np.full(size - len(self._where_segment), -1, dtype=np.int32)])
            self._where_row = np.concatenate([self._where_row, np.zeros(size - len(self._where_row), dtype=np.int64)])
            self._where_count = np.concatenate([self._where_count, np.zeros(size - len(self._where_count), dtype=np.int16)])

    def _load(self, segment: _Segment, into_coarse: bool = True, known: np.ndarray | None = None) -> None:
        """Map a segment's chunks; add its chunk-level views to the coarse index unless they are
        there already (``known``: chunks whose entries a released segment left).."""
        segment.number = len(self._numbered) and max(self._numbered) + 1
        self._numbered[segment.number] = segment
        chunks = segment.ids // MAX_VIEWS
        if len(chunks) == 0:
            self._segments[segment.name] = segment
            return
        starts = np.flatnonzero(np.r_[True, chunks[1:] != chunks[:-1]])
        counts = np.diff(np.r_[starts, len(chunks)])
        self._grow(int(chunks.max()))
        first = chunks[starts]
        self._live_chunks += int(np.count_nonzero(self._where_segment[first] < 0))
        self._where_segment[first] = segment.number
        self._where_row[first] = starts
        self._where_count[first] = counts
        self._segments[segment.name] = segment
        if not into_coarse:
            return
        coarse = (segment.ids % MAX_VIEWS) < 2
        if known is not None and len(known):
            coarse &= ~np.isin(segment.ids // MAX_VIEWS, known)
        self._coarse_add(np.asarray(segment.ids[coarse]), self._floats(segment.vectors[coarse]))

    def _release(self, segment: _Segment) -> np.ndarray:
        """Drop a segment a merge replaced; returns the chunks it held. Their coarse entries stay:
        a merged segment holds the same vectors (the graph cannot drop nodes anyway)."""
        chunks = np.unique(np.asarray(segment.ids) // MAX_VIEWS)
        chunks = chunks[self._where_segment[chunks] == segment.number]
        self._where_segment[chunks] = -1
        self._where_count[chunks] = 0
        self._live_chunks -= len(chunks)
        del self._numbered[segment.number]
        return chunks

    def _forget(self, chunk_ids: list[int]) -> None:
        array = np.asarray([c for c in chunk_ids if c < len(self._where_segment)], dtype=np.int64)
        array = array[self._where_segment[array] >= 0]
        if len(array) == 0:
            return
        chunk_ids = array.tolist()
        self._where_segment[array] = -1
        self._where_count[array] = 0
        self._live_chunks -= len(array)
        if self._deleted_during_build is not None:
            self._deleted_during_build += chunk_ids
        self._forget_coarse(array)

    def _forget_coarse(self, chunks: np.ndarray) -> None:
        if self._coarse is None or len(chunks) == 0:
            return
        coarse = np.concatenate([chunks * MAX_VIEWS + ORIGINAL, chunks * MAX_VIEWS + ENGLISH])
        if self.approximate:  # a graph cannot drop nodes: they are skipped until the rebuild
            self._dead.update(coarse.tolist())
            self._skip_dead = None
        else:
            self._coarse.remove_ids(faiss.IDSelectorBatch(coarse))

    # -- the coarse index --------------------------------------------------------------------
    def _coarse_add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self._coarse is None:  # exact, in float16 as the segments hold them: the same scores, half the memory
            exact = faiss.IndexScalarQuantizer(self.dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
            self._coarse = faiss.IndexIDMap2(exact)
        if len(ids):
            self._coarse.add_with_ids(np.ascontiguousarray(vectors[:, :self._coarse.d], dtype=np.float32),
                                      np.ascontiguousarray(ids, dtype=np.int64))

    def _owned_rows(self, segment: _Segment) -> np.ndarray:
        """Mask of a segment's rows whose chunk is live and held by this segment."""
        return self._where_segment[np.asarray(segment.ids) // MAX_VIEWS] == segment.number

    def _live_rows(self, segment: _Segment) -> np.ndarray:
        """Mask of a segment's rows that are chunk-level views of chunks it still holds."""
        return self._owned_rows(segment) & ((np.asarray(segment.ids) % MAX_VIEWS) < 2)

    def _build_graph(self) -> bool:
        """Replace the coarse index by an HNSW graph over 8-bit codes of every live chunk-level view.

        Built outside the lock from a snapshot, a segment at a time (memory stays near the graph's
        own size), so searches go on; writes made meanwhile are caught up at the swap. A merge
        made meanwhile (another process) voids the build: it is tried again at the next write."""
        with self._lock:
            snapshot = [(segment, self._live_rows(segment)) for segment in self._segments.values()]
            self._deleted_during_build = []
        rng = np.random.default_rng(0)
        total = sum(int(keep.sum()) for _, keep in snapshot)
        share = min(1.0, 100_000 / max(1, total))
        width = min(self.settings.graph_dimension or self.dimension, self.dimension)
        # Each part cut to the graph's width (a copy only when that is narrower), so the decoded
        # rows beyond it go at once.
        sample = np.concatenate([np.ascontiguousarray(self._floats(
            segment.vectors[np.flatnonzero(keep)[rng.random(int(keep.sum())) < share]])[:, :width]) for segment, keep in snapshot])
        codes = {8: faiss.ScalarQuantizer.QT_8bit, 4: faiss.ScalarQuantizer.QT_4bit}[self.settings.hnsw_bits]
        graph = faiss.IndexHNSWSQ(width, codes, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 64
        graph.train(sample)
        del sample
        index = faiss.IndexIDMap2(graph)
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is batch work: every core
        try:
            for segment, keep in snapshot:
                rows = np.flatnonzero(keep)
                for block in range(0, len(rows), 50_000):
                    chosen = rows[block: block + 50_000]
                    index.add_with_ids(np.ascontiguousarray(self._floats(segment.vectors[chosen])[:, :width]),
                                       np.asarray(segment.ids[chosen]))
        finally:
            faiss.omp_set_num_threads(SEARCH_THREADS)
        with self._lock:
            deleted, self._deleted_during_build = self._deleted_during_build, None
            built_from = {segment.name for segment, _ in snapshot}
            if not built_from <= set(self._segments):
                return False
            self._coarse, self._dead, self._skip_dead = index, set(), None
            for name in set(self._segments) - built_from:
                segment = self._segments[name]
                keep = self._live_rows(segment)
                self._coarse_add(np.asarray(segment.ids)[keep], self._floats(segment.vectors[keep]))
            self._forget_coarse(np.asarray(deleted, dtype=np.int64))
            self._save_coarse()
            return True

    def _save_coarse(self) -> None:
        staging = self.folder / "coarse.faiss.tmp"
        faiss.write_index(self._coarse, str(staging))
        os.replace(staging, self.folder / "coarse.faiss")
        note = {"segments": sorted(self._segments), "graph": self._graph_shape()}
        (self.folder / "coarse.json.tmp").write_text(json.dumps(note))
        os.replace(self.folder / "coarse.json.tmp", self.folder / "coarse.json")
        self._saved_cover = set(self._segments)

    def _find_dead(self) -> None:
        """Graph nodes of chunks no longer live (deleted or merged away before the graph was
        saved): skipped by searches, and counted towards the rebuild."""
        if not self.approximate:
            return
        ids = faiss.vector_to_array(self._coarse.id_map)
        chunks = ids // MAX_VIEWS
        known = chunks < len(self._where_segment)
        dead = ~known
        dead[known] = self._where_segment[chunks[known]] < 0
        self._dead, self._skip_dead = set(ids[dead].tolist()), None

    def _graph_shape(self) -> str:
        """The graph's settings as saved with it: a graph made with others is built again."""
        return f"HNSW{self.settings.hnsw_m},SQ{self.settings.hnsw_bits}"

    def merged_away(self, names: list[str]) -> None:
        """After a committed merge: if it replaced segments the saved graph covers, save the graph
        again. Otherwise the next process to open the library finds the note naming segments
        that no longer exist, drops the graph and scans exactly (at 100k chunks the server's
        hybrid search went from ~1 ms to ~8 ms for the coarse step until the next write)."""
        with self._lock:
            if self.approximate and self._saved_cover & set(names):
                self._save_coarse()

    def _load_coarse(self) -> None:
        """Reuse a saved graph when the segments it covers are still the committed ones (building
        it again at a million chunks takes minutes); anything newer is added on top."""
        note_path, index_path = self.folder / "coarse.json", self.folder / "coarse.faiss"
        if not (note_path.exists() and index_path.exists()):
            return
        try:
            note = json.loads(note_path.read_text())
            committed = self.manifest.segments()
            if not set(note["segments"]) <= set(committed) or note.get("graph", "HNSW32,SQ8") != self._graph_shape():
                return  # older than the segments (a merge since) or made with other settings: rebuilt, not damaged
            index = faiss.read_index(str(index_path))
            if index.d > self.dimension:
                raise ValueError(f"holds {index.d}-d vectors, the library {self.dimension}-d")
            wanted = self.settings.graph_dimension
            if wanted is not None and index.d != min(wanted, self.dimension):
                return  # made over another part of each vector: rebuilt, not damaged
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            self.coarse_damage = _why(exc)  # a damaged cache: the coarse index is rebuilt from the segments
            return
        covered = [self._open(name, committed[name]) for name in note["segments"]]
        if any(segment is None for segment in covered):
            return  # it covers a damaged segment: built again from what is readable
        # Every tombstone is still applied at open (the chunk map is built from the segments, which
        # keep deleted chunks' rows until a merge): taking the saved graph's place in the tombstone
        # list as done brought chunks deleted before the save back to life.
        self._coarse = index
        self._saved_cover = set(note["segments"])
        for segment in covered:  # their vectors are in the index already: map them only
            self._load(segment, into_coarse=False)

    def forget_saved_graph(self, folder: Path) -> None:
        """Move a damaged saved graph aside; the next ``train_if_due`` builds it again."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("coarse.faiss", "coarse.json"):
            if (self.folder / name).exists():
                os.replace(self.folder / name, folder / name)
        self.coarse_damage = None

    def train_if_due(self) -> bool:
        """Build the graph once the library is big enough, or again when deletes have hollowed it."""
        with self._lock:
            self.refresh()
            size = self.coarse_size() - len(self._dead)
            hollow = len(self._dead) > self.settings.rebuild_dead_share * max(1, self.coarse_size())
            due = size >= self.settings.ann_min and (not self.approximate or hollow)
        return due and self._build_graph()

    # -- writing -----------------------------------------------------------------------------
    def write(self, ids: np.ndarray, vectors: np.ndarray) -> tuple[str, int]:
        """Write a new segment file pair (not yet live); returns its name and row count. A chunk's
        views must be consecutive. Commit it with the manifest, or ``discard`` it."""
        if vectors.shape[1:] != (self.dimension,):
            raise ValueError(f"vectors are {vectors.shape[1:]}-d, the library holds {self.dimension}-d")
        return self._write_blocks([(np.asarray(ids), vectors)], len(ids))

    def _write_blocks(self, blocks, rows: int) -> tuple[str, int]:
        return write_segment(self.folder, self.dimension, blocks, rows)

    def discard(self, *names: str) -> None:
        """Remove segment files: an uncommitted write, or segments a committed merge replaced
        (a reader that still maps them keeps reading until it refreshes)."""
        for name in names:
            for suffix in (".ids.npy", ".vec.npy"):
                (self.folder / f"{name}{suffix}").unlink(missing_ok=True)

    def merge_plan(self) -> list[list[str]]:
        """Groups of segments to merge: ``merge_fanout`` or more of one size tier."""
        with self._lock:
            tiers: dict[int, list[str]] = {}
            for name, segment in sorted(self._segments.items()):
                tiers.setdefault(int(math.log(max(len(segment), 1), self.settings.merge_fanout)), []).append(name)
            return [names for names in tiers.values() if len(names) >= self.settings.merge_fanout]

    def merged(self, names: list[str]) -> tuple[str, int]:
        """Write one segment holding the live rows of these segments (not yet live itself),
        streamed block by block: the top tier of a million-chunk library is gigabytes."""
        with self._lock:
            parts = [(self._segments[n], self._owned_rows(self._segments[n])) for n in names]

        def blocks():
            for segment, keep in parts:
                rows = np.flatnonzero(keep)
                for at in range(0, len(rows), 100_000):
                    chosen = rows[at: at + 100_000]
                    yield np.asarray(segment.ids[chosen]), np.asarray(segment.vectors[chosen])

        return self._write_blocks(blocks(), sum(int(keep.sum()) for _, keep in parts))

    # -- reading -----------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float, int]]:
        """Best ``k`` chunks for a (normalised) query: (chunk id, score of its best view, that view).
        ``allowed`` (chunk ids) restricts the search to the chunks a filter admits."""
        self.refresh()
        faiss.omp_set_num_threads(SEARCH_THREADS)
        with self._lock:
            if self._coarse is None or self._coarse.ntotal == 0 or (allowed is not None and len(allowed) == 0):
                return []
            query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
            if allowed is not None and len(allowed) <= self.settings.exact_subset:
                candidates = allowed  # few enough to score every view of every admitted chunk
            else:
                candidates = self._candidates(query, k, allowed)
            return self._rescore(query[0], candidates)[:k]

    def _candidates(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
        fetch = min(self.settings.coarse_factor * k, self._coarse.ntotal)
        selectors = []
        if allowed is not None:
            selectors.append(faiss.IDSelectorBatch(np.concatenate([allowed * MAX_VIEWS + ORIGINAL, allowed * MAX_VIEWS + ENGLISH])))
        if self._dead:
            if self._skip_dead is None:
                self._skip_dead = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.fromiter(self._dead, dtype=np.int64)))
            selectors.append(self._skip_dead)
        selector = selectors[0] if len(selectors) == 1 else faiss.IDSelectorAnd(*selectors) if selectors else None
        if self.approximate:  # fewer admitted chunks: a broader walk through the graph
            share = 1.0 if allowed is None else len(allowed) / max(1, self._live_chunks)
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=int(min(4096, max(fetch, self.settings.ef_search / share))))
        else:
            params = faiss.SearchParameters(sel=selector) if selector else None
        _, ids = self._coarse.search(np.ascontiguousarray(query[:, :self._coarse.d]), fetch, params=params)
        found = ids[0][ids[0] >= 0]
        return np.unique(found // MAX_VIEWS)

    def _rescore(self, query: np.ndarray, chunks: np.ndarray) -> list[tuple[int, float, int]]:
        """Every view of each candidate chunk, scored exactly from the float16 segment rows."""
        results: list[tuple[int, float, int]] = []
        chunks = chunks[chunks < len(self._where_segment)]
        numbers = self._where_segment[chunks]
        for number in np.unique(numbers[numbers >= 0]).tolist():
            segment, members = self._numbered[number], chunks[numbers == number]
            starts = self._where_row[members]
            counts = self._where_count[members].astype(np.int64)
            _will_need(segment.vectors, starts, counts)
            offsets = np.r_[0, np.cumsum(counts)[:-1]]
            rows = np.repeat(starts - offsets, counts) + np.arange(int(counts.sum()))
            views = np.asarray(segment.ids[rows]) % MAX_VIEWS
            scores = self._floats(segment.vectors[rows]) @ query
            best = np.maximum.reduceat(scores, offsets)
            hit = np.flatnonzero(scores == np.repeat(best, counts))  # rows reaching their chunk's best
            _, first_of_chunk = np.unique(np.searchsorted(offsets, hit, side="right") - 1, return_index=True)
            first = hit[first_of_chunk]
            results += zip(members.tolist(), best.tolist(), views[first].tolist())
        results.sort(key=lambda item: -item[1])
        return results

    def views(self, chunk_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(view numbers, float32 vectors) of one chunk."""
        self.refresh()
        with self._lock:
            if chunk_id >= len(self._where_segment) or self._where_segment[chunk_id] < 0:
                return np.zeros(0, dtype=np.int64), np.zeros((0, self.dimension), dtype=np.float32)
            segment = self._numbered[int(self._where_segment[chunk_id])]
            row, count = int(self._where_row[chunk_id]), int(self._where_count[chunk_id])
            return np.asarray(segment.ids[row: row + count]) % MAX_VIEWS, self._floats(segment.vectors[row: row + count])

    def _floats(self, rows: np.ndarray) -> np.ndarray:
        """float16 segment rows as float32."""
        return self._half.sa_decode(np.ascontiguousarray(rows).view(np.uint8))

    def chunk_ids(self) -> set[int]:
        with self._lock:
            return set(np.flatnonzero(self._where_segment >= 0).tolist())
