"""The library facade: what ingest hands over is embedded and stored; queries come back as hits.

It also guards the library's identity: vectors from two embedding models must never be mixed,
so the model that built a library is recorded and checked on every write and search.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.errors import TalksearchError
from ingest.records import Chunk, Recording, Transcript

from .embedder import Embedder
from .store import FaissSqliteStore, Store


class LibraryError(TalksearchError):
    """The library cannot do what was asked (empty, unknown recording, wrong model)."""


@dataclass
class Hit:
    """One search result: a span of one recording, in the words spoken and in English."""

    recording_id: str
    title: str
    source: str
    start: float
    end: float
    language: str
    text: str
    translation: str | None
    score: float


class Library:
    """One library folder opened with one embedding model."""

    def __init__(self, folder: Path, embedder: Embedder, store: Store | None = None):
        self.folder = folder
        self.embedder = embedder
        self._store = store

    @property
    def store(self) -> Store:
        """Opened on first use: listing or deleting never needs the embedding model loaded,
        unless the library is new and its vector size is not yet known."""
        if self._store is None:
            known = None
            catalog = self.folder / "catalog.sqlite"
            if catalog.exists():
                from .catalog import Catalog

                probe = Catalog(catalog)
                known = probe.get_meta("dimension")
                probe.close()
            dimension = int(known) if known else self.embedder.dimension
            self._store = FaissSqliteStore(self.folder, dimension)
        return self._store

    # -- identity ---------------------------------------------------------------------------
    def check_model(self) -> None:
        built_with = self.store.get_meta("embedding_model")
        if built_with is not None and built_with != self.embedder.model_name:
            raise LibraryError(
                f"library {self.folder} was built with embedding model {built_with!r}, not {self.embedder.model_name!r}: "
                f"use --embed-model {built_with} or run 'talksearch reindex' to re-embed it with the new model")

    def _claim(self) -> None:
        if self.store.get_meta("embedding_model") is None:
            self.store.set_meta("embedding_model", self.embedder.model_name)
            self.store.set_meta("dimension", str(self.embedder.dimension))

    # -- writing ----------------------------------------------------------------------------
    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk]) -> None:
        self.check_model()
        original, english = self._embed(chunks)
        self._claim()
        self.store.add(recording, transcript, chunks, original, english)

    def _embed(self, chunks: list[Chunk]) -> tuple[np.ndarray, np.ndarray]:
        original = self.embedder.passages([c.text for c in chunks])
        english = self.embedder.passages([c.translation or "" for c in chunks])
        return original, english

    def delete(self, ref: str) -> Recording:
        recording = self.resolve(ref)
        self.store.delete(recording.id)
        return recording

    def reindex(self) -> int:
        """Re-embed every chunk with the current model (after choosing another model)."""
        chunks = self.store.all_chunks()
        if self.store.get_meta("dimension") not in (None, str(self.embedder.dimension)):
            raise LibraryError("the new model's vector size differs from the library's: build a new library and re-ingest")
        original, english = self._embed(chunks)
        self.store.replace_vectors([c.id for c in chunks], original, english)
        self.store.set_meta("embedding_model", self.embedder.model_name)
        self.store.set_meta("dimension", str(self.embedder.dimension))
        return len(chunks)

    # -- reading ----------------------------------------------------------------------------
    def resolve(self, ref: str) -> Recording:
        """A recording by id, unique id prefix or exact title."""
        found = self.store.find(ref)
        if not found:
            raise LibraryError(f"no recording {ref!r} in {self.folder} (see 'talksearch list')")
        if len(found) > 1:
            raise LibraryError(f"{ref!r} matches {len(found)} recordings: {', '.join(r.id for r in found[:5])}; give more of the id")
        return found[0]

    def search(self, query: str, k: int = 10, language: str | None = None,
               recordings: list[str] | None = None) -> list[Hit]:
        query = " ".join(query.split())
        if not query:
            raise LibraryError("empty query")
        if k < 1:
            raise LibraryError("k must be at least 1")
        if self.store.counts()["chunks"] == 0:
            raise LibraryError(f"library {self.folder} is empty: ingest or import recordings first")
        self.check_model()
        vector = self.embedder.queries([query])[0]
        # Filters apply after retrieval, so fetch generously; a flat index makes this cheap.
        pool = self.store.nearest(vector, max(100, 20 * k))
        pool = [(c, s) for c, s in pool if (language is None or c.language == language)
                and (recordings is None or c.recording_id in recordings)]
        return self._hits(merge_overlapping(pool))[:k]

    def _hits(self, merged: list[tuple[Chunk, float]]) -> list[Hit]:
        titles: dict[str, Recording] = {}
        hits = []
        for chunk, score in merged:
            recording = titles.get(chunk.recording_id) or self.store.recording(chunk.recording_id)
            if recording is None:
                continue
            titles[chunk.recording_id] = recording
            hits.append(Hit(chunk.recording_id, recording.title, recording.source, round(chunk.start, 2), round(chunk.end, 2),
                            chunk.language, chunk.text, chunk.translation, round(score, 4)))
        return hits


def _stitch(first: str | None, second: str | None) -> str | None:
    """Join two overlapping texts without repeating the shared sentence(s)."""
    if not first or not second:
        return first or second
    if second in first:
        return first
    for size in range(min(len(first), len(second)), 0, -1):
        if first.endswith(second[:size]) and (size == len(second) or second[size] == " " or second[size - 1] == " "):
            return first + second[size:]
    return f"{first} {second}"


def merge_overlapping(ranked: list[tuple[Chunk, float]], tie: float = 0.01) -> list[tuple[Chunk, float]]:
    """Fold chunks of one recording that overlap in time into one hit, best score first.

    Neighbouring chunks share a sentence, so a good passage often surfaces twice; a user wants
    it once. The hit grows to span both only when the neighbour scores within ``tie`` of it,
    otherwise the weaker neighbour is absorbed: hits stay as tight as the evidence.
    """
    merged: list[tuple[Chunk, float]] = []
    for chunk, score in sorted(ranked, key=lambda pair: -pair[1]):
        for i, (kept, best) in enumerate(merged):
            if kept.recording_id != chunk.recording_id or chunk.start >= kept.end or kept.start >= chunk.end:
                continue
            if best - score <= tie:
                merged[i] = (_span(kept, chunk), best)
            break
        else:
            merged.append((chunk, score))
    return merged


def _span(a: Chunk, b: Chunk) -> Chunk:
    """One chunk covering two overlapping ones, text stitched without repeating the overlap."""
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.end <= first.end:
        return first
    return Chunk(first.recording_id, first.start, second.end, first.language, _stitch(first.text, second.text),
                 _stitch(first.translation, second.translation), first.seq, first.id)
