"""The library's storage behind one small interface.

``Store`` is what search and ingest need from storage; ``FaissSqliteStore`` implements it with
a SQLite catalog and a FAISS file in one folder. A distributed backend (OpenSearch, Qdrant)
would implement the same Protocol without touching ingest or the API.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ingest.records import Chunk, Recording, Transcript

from .catalog import Catalog
from .lexical import Analyzer
from .vectors import ENGLISH, ORIGINAL, VectorIndex, View, chunk_of, ids_of_chunks, vector_id, view_of


class Store(Protocol):
    analyzer: Analyzer  # the keyword analysis the store indexes with; search highlights with the same

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk],
            views: list[View], vectors: np.ndarray) -> None: ...
    def delete(self, recording_id: str) -> bool: ...
    def update(self, recording_id: str, changes: dict[str, str | None]) -> None: ...
    def nearest(self, query: np.ndarray, k: int) -> list[tuple[Chunk, float, tuple[float, float] | None]]: ...
    def keyword(self, query: str, k: int) -> list[tuple[Chunk, float, float]]: ...
    def recordings(self) -> list[Recording]: ...
    def recording(self, recording_id: str) -> Recording | None: ...
    def find(self, ref: str) -> list[Recording]: ...
    def by_hash(self, content_hash: str) -> Recording | None: ...
    def transcript(self, recording_id: str) -> Transcript | None: ...
    def passage(self, recording_id: str, start: float, end: float) -> Transcript: ...
    def all_chunks(self) -> list[Chunk]: ...
    def replace_vectors(self, chunk_ids: list[int], views: list[View], vectors: np.ndarray) -> None: ...
    def counts(self) -> dict[str, float]: ...


class FaissSqliteStore:
    """``catalog.sqlite`` + ``vectors.faiss`` in the library folder.

    Writes go vectors-first, catalog-commit-last: if anything fails the catalog rolls back and
    the new vectors are removed again; ids the catalog does not know are ignored by search.
    """

    def __init__(self, folder: Path, dimension: int, analyzer: Analyzer | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(folder / "catalog.sqlite")
        self.vectors = VectorIndex(folder / "vectors.faiss", dimension)
        self.analyzer = analyzer or Analyzer()
        missing = self.catalog.unindexed_chunks()
        if missing:  # keyword rows are derived data: rebuild whatever is absent
            with self.catalog.transaction():
                self.catalog.set_terms([c.id for c in missing], self._terms(missing))

    def _terms(self, chunks: list[Chunk]) -> list[tuple[str, str]]:
        return [(" ".join(self.analyzer.keys(c.text)), " ".join(self.analyzer.keys(c.translation or ""))) for c in chunks]

    def get_meta(self, key: str) -> str | None:
        return self.catalog.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.catalog.set_meta(key, value)

    def add(self, recording, transcript, chunks, views, vectors) -> None:
        """``views[i].chunk`` is a position in ``chunks``; it becomes the chunk's id here."""
        with self.catalog.transaction():
            ids = self.catalog.add(recording, transcript, chunks, self._terms(chunks))
            stored = [replace(view, chunk=ids[view.chunk]) for view in views]
            self.catalog.set_windows(ids, self._windows(stored))
            vector_ids = [vector_id(v.chunk, v.view) for v in stored]
            self.vectors.add(np.asarray(vector_ids, dtype=np.int64), vectors)
            try:
                self.vectors.save()
            except BaseException:
                self.vectors.remove(vector_ids)
                raise

    @staticmethod
    def _windows(views: list[View]) -> list[tuple[int, int, float, float]]:
        return [(v.chunk, v.view, v.start, v.end) for v in views if v.view not in (ORIGINAL, ENGLISH)]

    def replace_vectors(self, chunk_ids, views, vectors) -> None:
        """Swap all vectors of these chunks for new ones (``views`` carry chunk ids)."""
        with self.catalog.transaction():
            self.catalog.set_windows(chunk_ids, self._windows(views))
            self.vectors.remove(ids_of_chunks(chunk_ids))
            self.vectors.add(np.asarray([vector_id(v.chunk, v.view) for v in views], dtype=np.int64), vectors)
            self.vectors.save()

    def delete(self, recording_id: str) -> bool:
        with self.catalog.transaction():
            if self.catalog.recording(recording_id) is None:
                return False
            self.vectors.remove(ids_of_chunks(self.catalog.delete(recording_id)))
            self.vectors.save()
        return True

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[Chunk, float, tuple[float, float] | None]]:
        """Best chunks for a query: each scores its best view, and when that is a window of two
        sentences, the window's span comes along (None when the whole chunk matched best)."""
        best: dict[int, tuple[float, int]] = {}
        for vid, score in self.vectors.search(query, 4 * k):
            chunk = chunk_of(vid)
            if score > best.get(chunk, (-2.0, 0))[0]:
                best[chunk] = (score, view_of(vid))
        chunks = self.catalog.chunks(list(best))
        spans = self.catalog.window_spans([(c, view) for c, (_, view) in best.items() if view not in (ORIGINAL, ENGLISH)])
        ranked = sorted(((chunks[c], score, spans.get((c, view))) for c, (score, view) in best.items() if c in chunks),
                        key=lambda item: -item[1])
        return ranked[:k]

    def keyword(self, query: str, k: int) -> list[tuple[Chunk, float, float]]:
        """Chunks sharing terms with the query: (chunk, BM25 score, fraction of query terms present)."""
        terms = set(self.analyzer.keys(query))
        found = self.catalog.keyword(sorted(terms), k)
        chunks = self.catalog.chunks([chunk_id for chunk_id, _, _ in found])
        return [(chunks[i], score, len(held) / len(terms)) for i, score, held in found if i in chunks]

    def update(self, recording_id, changes):
        self.catalog.update(recording_id, changes)

    def recordings(self):
        return self.catalog.recordings()

    def recording(self, recording_id):
        return self.catalog.recording(recording_id)

    def find(self, ref):
        return self.catalog.find(ref)

    def by_hash(self, content_hash):
        return self.catalog.by_hash(content_hash)

    def transcript(self, recording_id):
        return self.catalog.transcript(recording_id)

    def passage(self, recording_id, start, end):
        return self.catalog.passage(recording_id, start, end)

    def all_chunks(self):
        return self.catalog.all_chunks()

    def counts(self):
        return {**self.catalog.counts(), "vectors": len(self.vectors)}
