"""The library's storage behind one small interface.

``Store`` is what search and ingest need from storage; ``FaissSqliteStore`` implements it with
a SQLite catalog and a FAISS file in one folder. A distributed backend (OpenSearch, Qdrant)
would implement the same Protocol without touching ingest or the API.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ingest.records import Chunk, Recording, Transcript

from .catalog import Catalog
from .lexical import Analyzer
from .vectors import ENGLISH, ORIGINAL, VectorIndex, chunk_of, vector_id


class Store(Protocol):
    analyzer: Analyzer  # the keyword analysis the store indexes with; search highlights with the same

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk],
            original: np.ndarray, english: np.ndarray) -> None: ...
    def delete(self, recording_id: str) -> bool: ...
    def update(self, recording_id: str, changes: dict[str, str | None]) -> None: ...
    def nearest(self, query: np.ndarray, k: int) -> list[tuple[Chunk, float]]: ...
    def keyword(self, query: str, k: int) -> list[tuple[Chunk, float, float]]: ...
    def recordings(self) -> list[Recording]: ...
    def recording(self, recording_id: str) -> Recording | None: ...
    def find(self, ref: str) -> list[Recording]: ...
    def by_hash(self, content_hash: str) -> Recording | None: ...
    def transcript(self, recording_id: str) -> Transcript | None: ...
    def passage(self, recording_id: str, start: float, end: float) -> Transcript: ...
    def all_chunks(self) -> list[Chunk]: ...
    def replace_vectors(self, chunk_ids: list[int], original: np.ndarray, english: np.ndarray) -> None: ...
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

    def add(self, recording, transcript, chunks, original, english) -> None:
        with self.catalog.transaction():
            ids = self.catalog.add(recording, transcript, chunks, self._terms(chunks))
            vector_ids, vectors = self._views(ids, chunks, original, english)
            self.vectors.add(vector_ids, vectors)
            try:
                self.vectors.save()
            except BaseException:
                self.vectors.remove(vector_ids.tolist())
                raise

    @staticmethod
    def _views(ids: list[int], chunks: list[Chunk], original: np.ndarray, english: np.ndarray):
        """Vector ids and rows: every chunk's original text, plus its English where it has one."""
        has_english = [i for i, chunk in enumerate(chunks) if chunk.translation]
        vector_ids = [vector_id(c, ORIGINAL) for c in ids] + [vector_id(ids[i], ENGLISH) for i in has_english]
        rows = np.vstack([original, english[has_english]]) if has_english else original
        return np.asarray(vector_ids, dtype=np.int64), rows

    def replace_vectors(self, chunk_ids, original, english) -> None:
        chunks = self.catalog.chunks(chunk_ids)
        ordered = [chunks[i] for i in chunk_ids]
        self.vectors.remove([vector_id(c, view) for c in chunk_ids for view in (ORIGINAL, ENGLISH)])
        vector_ids, vectors = self._views(chunk_ids, ordered, original, english)
        self.vectors.add(vector_ids, vectors)
        self.vectors.save()

    def delete(self, recording_id: str) -> bool:
        with self.catalog.transaction():
            if self.catalog.recording(recording_id) is None:
                return False
            ids = self.catalog.delete(recording_id)
            self.vectors.remove([vector_id(c, view) for c in ids for view in (ORIGINAL, ENGLISH)])
            self.vectors.save()
        return True

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[Chunk, float]]:
        """Best chunks for a query; a chunk scores the better of its original and English vectors."""
        best: dict[int, float] = {}
        for vid, score in self.vectors.search(query, 2 * k):
            chunk = chunk_of(vid)
            best[chunk] = max(score, best.get(chunk, -1.0))
        chunks = self.catalog.chunks(list(best))
        ranked = sorted(((chunks[c], s) for c, s in best.items() if c in chunks), key=lambda pair: -pair[1])
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
