"""Chunk vectors in FAISS, keyed by ids that survive deletes (IndexIDMap2 over inner product)."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

# Each chunk is embedded several ways ("views"): its whole text as spoken and in English, and
# windows of two consecutive sentences inside it, again both ways. A chunk scores its best view;
# a window view also says which seconds of the chunk matched.
MAX_VIEWS = 64
ORIGINAL, ENGLISH = 0, 1


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


def chunk_of(vector: int) -> int:
    return vector // MAX_VIEWS


def view_of(vector: int) -> int:
    return vector % MAX_VIEWS


def ids_of_chunks(chunk_ids: list[int]) -> list[int]:
    """Every vector id a chunk may own (removing an id that is absent is harmless)."""
    return [vector_id(c, view) for c in chunk_ids for view in range(MAX_VIEWS)]


class VectorIndex:
    """Exact inner-product search (vectors are normalised, so this is cosine).

    A flat index is exact and fast enough for thousands of hours of talks on a CPU; the file
    is rewritten atomically so a crash never leaves a torn index.
    """

    def __init__(self, path: Path, dimension: int):
        self.path = path
        self._lock = threading.RLock()
        if path.exists():
            self._index = faiss.read_index(str(path))
            if self._index.d != dimension:
                raise ValueError(f"{path} holds {self._index.d}-d vectors, the model makes {dimension}-d")
        else:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self._lock:
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: list[int]) -> None:
        with self._lock:
            if ids:
                self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self._lock:
            if self._index.ntotal == 0:
                return []
            scores, ids = self._index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), min(k, self._index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def ids(self) -> set[int]:
        with self._lock:
            return set(faiss.vector_to_array(self._index.id_map).tolist())

    def save(self) -> None:
        with self._lock:
            staging = self.path.with_suffix(".tmp")
            faiss.write_index(self._index, str(staging))
            os.replace(staging, self.path)
