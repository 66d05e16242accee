"""The library facade: what ingest hands over is embedded and stored; queries come back as hits.

It also guards the library's identity: vectors from two embedding models must never be mixed,
so the model that built a library is recorded and checked on every write and search.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ingest.align import render
from ingest.chunking import Sentence, sentences
from ingest.errors import TalksearchError
from ingest.records import Chunk, Recording, Transcript

from .catalog import Catalog
from .centering import RECIPE, LanguageCentering
from .embedder import Embedder
from .quotes import contains, locate, quoted
from .ranking import FusionSettings, SearchFilters, fuse, merge_overlapping
from .store import FaissSqliteStore, Store
from .vectors import ENGLISH, ORIGINAL, View

SEARCH_MODES = ("hybrid", "dense", "lexical")


class LibraryError(TalksearchError):
    """The library cannot do what was asked (empty, unknown recording, wrong model)."""


@dataclass
class Hit:
    """One search result: a span of one recording, in the words spoken and in English.

    ``highlights`` / ``translation_highlights`` are [start, end) character ranges of the words
    that matched the query, for snippets.
    """

    recording_id: str
    title: str
    source: str
    start: float
    end: float
    language: str
    text: str
    translation: str | None
    score: float
    highlights: list[list[int]] = field(default_factory=list)
    translation_highlights: list[list[int]] = field(default_factory=list)


class Library:
    """One library folder opened with one embedding model."""

    def __init__(self, folder: Path, embedder: Embedder, store: Store | None = None, fusion: FusionSettings | None = None):
        self.folder = folder
        self.embedder = embedder
        self.fusion = fusion or FusionSettings()
        self.centering = LanguageCentering(embedder)
        # How many hits without shared words get their span narrowed by meaning (costs an embedding batch).
        self.focus_by_meaning = 3
        # A neighbour whose similarity is this close to the best sentence's stays in the clip.
        self.focus_margin = 0.06
        self._store = store
        self._opening = threading.Lock()  # the API's request and job threads may both open it first

    @property
    def store(self) -> Store:
        """Opened on first use: listing or deleting never needs the embedding model loaded,
        unless the library is new and its vector size is not yet known."""
        with self._opening:
            if self._store is None:
                self._store = self._open()
        return self._store

    def _open(self) -> Store:
        known = None
        catalog = self.folder / "catalog.sqlite"
        if catalog.exists():
            probe = Catalog(catalog)
            known = probe.get_meta("dimension")
            probe.close()
        dimension = int(known) if known else self.embedder.dimension
        return FaissSqliteStore(self.folder, dimension)

    # -- identity ---------------------------------------------------------------------------
    def check_model(self) -> None:
        built_with = self.store.get_meta("embedding_model")
        if built_with is not None and built_with != self.embedder.model_name:
            raise LibraryError(
                f"library {self.folder} was built with embedding model {built_with!r}, not {self.embedder.model_name!r}: "
                f"use --embed-model {built_with} or run 'talksearch reindex' to re-embed it with the new model")
        recipe = self.store.get_meta("vector_recipe")
        if built_with is not None and recipe != RECIPE:
            raise LibraryError(f"library {self.folder} holds vectors made the old way ({recipe or 'uncentred'}): "
                               "run 'talksearch reindex' once to bring them up to date")

    def _claim(self) -> None:
        if self.store.get_meta("embedding_model") is None:
            self.store.set_meta("embedding_model", self.embedder.model_name)
            self.store.set_meta("dimension", str(self.embedder.dimension))
            self.store.set_meta("vector_recipe", RECIPE)

    # -- writing ----------------------------------------------------------------------------
    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk]) -> None:
        self.check_model()
        views = chunk_views(chunks, transcript)
        vectors = self.centering.passages([v.text for v in views], [v.language for v in views])
        self._claim()
        self.store.add(recording, transcript, chunks, views, vectors)

    def delete(self, ref: str) -> Recording:
        recording = self.resolve(ref)
        self.store.delete(recording.id)
        return recording

    def reindex(self) -> int:
        """Re-embed every chunk with the current model and vector recipe, one recording at a time."""
        if self.store.get_meta("dimension") not in (None, str(self.embedder.dimension)):
            raise LibraryError("the new model's vector size differs from the library's: build a new library and re-ingest")
        chunks = self.store.all_chunks()
        for recording in self.store.recordings():
            own = [c for c in chunks if c.recording_id == recording.id]
            views = [replace(v, chunk=own[v.chunk].id) for v in chunk_views(own, self.store.transcript(recording.id))]
            vectors = self.centering.passages([v.text for v in views], [v.language for v in views])
            self.store.replace_vectors([c.id for c in own], views, vectors)
        self.store.set_meta("embedding_model", self.embedder.model_name)
        self.store.set_meta("dimension", str(self.embedder.dimension))
        self.store.set_meta("vector_recipe", RECIPE)
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

    def search(self, query: str, k: int = 10, filters: SearchFilters | None = None, mode: str = "hybrid") -> list[Hit]:
        """Best hits for a query. A query in double quotes is an exact-phrase search."""
        if mode not in SEARCH_MODES:
            raise LibraryError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
        query = " ".join(query.split())
        phrase = quoted(query)
        if not (phrase or query.strip('"“”«» ')):
            raise LibraryError("empty query")
        if k < 1:
            raise LibraryError("k must be at least 1")
        if self.store.counts()["chunks"] == 0:
            raise LibraryError(f"library {self.folder} is empty: ingest or import recordings first")
        self.check_model()
        filters = filters or SearchFilters()
        admitted = {r.id: r for r in self.store.recordings() if filters.admits_recording(r)}
        admit = lambda chunk: chunk.recording_id in admitted and filters.language in (None, chunk.language)  # noqa: E731
        if phrase:
            return self._quote_hits(phrase, k, admit, admitted)
        pool = max(100, 20 * k)
        vector = self.centering.query(query)
        nearest = [] if mode == "lexical" else [(c, s, span) for c, s, span in self.store.nearest(vector, pool) if admit(c)]
        dense = [(c, s) for c, s, _ in nearest]
        windows = {c.id: span for c, _, span in nearest if span}
        lexical = [] if mode == "dense" else [(c, s, f) for c, s, f in self.store.keyword(query, pool) if admit(c)]
        if mode == "dense":
            ranked = dense
        elif mode == "lexical":
            ranked = [(c, s) for c, s, _ in lexical]
        else:
            ranked = fuse(dense, lexical, self.fusion)
        top = merge_overlapping(ranked)[:k]
        passages = [self.store.passage(chunk.recording_id, chunk.start, chunk.end) for chunk, _ in top]
        units = [self._sentences(chunk, passage) for (chunk, _), passage in zip(top, passages)]
        spans = self._focus(units, passages, query, vector, [windows.get(chunk.id) for chunk, _ in top])
        return [self._hit(chunk, passage, sentences_in, score, query, admitted[chunk.recording_id], span)
                for (chunk, score), passage, sentences_in, span in zip(top, passages, units, spans)]

    def _quote_hits(self, phrase: str, k: int, admit, admitted: dict[str, Recording]) -> list[Hit]:
        """Chunks holding the phrase, each tightened to the quoted words' own timestamps."""
        hits: list[Hit] = []
        for chunk, _, _ in self.store.keyword(phrase, 1000):
            if not admit(chunk) or not contains(chunk.text, phrase) and not contains(chunk.translation or "", phrase):
                continue
            passage = self.store.passage(chunk.recording_id, chunk.start, chunk.end)
            span = locate([w for s in passage.segments for w in s.words], phrase)
            if span is None:  # no word timings (imported subtitles) or the phrase is in the English: whole cue(s)
                holding = [s for s in passage.segments if contains(s.text, phrase) or contains(s.translation or "", phrase)]
                span = (holding[0].start, holding[-1].end) if holding else (chunk.start, chunk.end)
            if any(h.recording_id == chunk.recording_id and h.start == round(span[0], 2) for h in hits):
                continue  # the same occurrence seen through an overlapping chunk
            hits.append(self._hit(chunk, passage, self._sentences(chunk, passage), 1.0, phrase, admitted[chunk.recording_id], span))
        return sorted(hits, key=lambda h: (h.recording_id, h.start))[:k]

    def _hit(self, chunk: Chunk, passage: Transcript, units: list[Sentence], score: float, query: str,
             recording: Recording, span: tuple[float, float] | None = None) -> Hit:
        """A hit on word boundaries around the sentence(s) that match the query best; ``passage``
        is the chunk's stretch of transcript and ``units`` its sentences."""
        start, end = span or (chunk.start, chunk.end)
        inside = [u for u in units if u.end > start and u.start < end]
        text = " ".join(u.text for u in inside) if inside else chunk.text
        if inside and span and (inside[0].start < start - 0.01 or inside[-1].end > end + 0.01):
            words = [w for s in passage.segments for w in s.words if w.start >= start - 0.01 and w.end <= end + 0.01]
            text = "".join(w.text for w in words).strip() or text
        translation = None if chunk.language == "en" else (render(passage.translation, start, end) or chunk.translation)
        terms = set(self.store.analyzer.keys(query))
        return Hit(chunk.recording_id, recording.title, recording.source, round(start, 2), round(end, 2), chunk.language,
                   text, translation, round(score, 4), self._marks(text, terms), self._marks(translation or "", terms))

    @staticmethod
    def _sentences(chunk: Chunk, passage: Transcript) -> list[Sentence]:
        return [u for u in sentences(passage.segments, 40.0) if u.start >= chunk.start - 0.01 and u.end <= chunk.end + 0.01]

    def _focus(self, units_per_hit: list[list[Sentence]], passages: list[Transcript], query: str, vector: np.ndarray,
               windows: list[tuple[float, float] | None]) -> list[tuple[float, float] | None]:
        """For each hit, the span of the sentence(s) that match the query best.

        The sentence sharing most query terms (in its words or its English rendering) wins,
        together with adjacent sentences that share terms too. Where no sentence shares a term (a
        cross-lingual query), the two-sentence window whose vector matched best is the span; failing
        that, the top ``focus_by_meaning`` hits pick the sentence closest in meaning, embedded in
        one batch, and hits further down keep their whole chunk.
        """
        terms = set(self.store.analyzer.keys(query))
        spans: list[tuple[float, float] | None] = []
        by_meaning: list[tuple[int, list[Sentence]]] = []
        for i, (units, passage, window) in enumerate(zip(units_per_hit, passages, windows)):
            said = [f"{u.text} {render(passage.translation, u.start, u.end) or ''}" for u in units]
            shared = [len(terms & set(self.store.analyzer.keys(text))) for text in said]
            spans.append(None)
            if max(shared, default=0) > 0:
                lo = hi = shared.index(max(shared))
                while lo > 0 and shared[lo - 1]:
                    lo -= 1
                while hi < len(units) - 1 and shared[hi + 1]:
                    hi += 1
                spans[i] = (units[lo].start, units[hi].end)
            elif window:
                spans[i] = window
            elif len(units) > 1 and len(by_meaning) < self.focus_by_meaning:
                by_meaning.append((i, units))
        if by_meaning:
            candidates = [u for _, units in by_meaning for u in units]
            similarity = self.centering.passages([u.text for u in candidates], [u.language for u in candidates]) @ vector
            offset = 0
            for i, units in by_meaning:
                spans[i] = _closest(units, similarity[offset: offset + len(units)], self.focus_margin)
                offset += len(units)
        return spans

    def _marks(self, text: str, terms: set[str]) -> list[list[int]]:
        return [[t.start, t.end] for t in self.store.analyzer.terms(text) if t.text in terms]


def _closest(units: list[Sentence], similarity: np.ndarray, margin: float) -> tuple[float, float]:
    """Span of the most similar sentence, widened to a neighbour that is nearly as similar:
    meaning is a weaker signal than shared words, so a close call keeps both sentences."""
    best = int(np.argmax(similarity))
    lo = hi = best
    neighbours = [j for j in (best - 1, best + 1) if 0 <= j < len(units)]
    if neighbours:
        runner = max(neighbours, key=lambda j: similarity[j])
        if similarity[best] - similarity[runner] <= margin:
            lo, hi = min(best, runner), max(best, runner)
    return units[lo].start, units[hi].end


def chunk_views(chunks: list[Chunk], transcript: Transcript, max_windows: int = 30) -> list[View]:
    """What gets embedded for each chunk (``View.chunk`` = position in ``chunks``): the whole
    chunk as spoken and in English, and every window of two consecutive sentences inside it,
    as spoken and in English. Windows let a specific query match the part of a long chunk that
    answers it (on the development set: MRR 0.86 → 0.92) while chunks stay 15–40 s of context."""
    units = sentences(transcript.segments, 40.0)
    views: list[View] = []
    for i, chunk in enumerate(chunks):
        views.append(View(i, ORIGINAL, chunk.start, chunk.end, chunk.text, chunk.language))
        if chunk.translation:
            views.append(View(i, ENGLISH, chunk.start, chunk.end, chunk.translation, "en"))
        inside = [u for u in units if u.start >= chunk.start - 0.01 and u.end <= chunk.end + 0.01]
        if len(inside) < 3:  # one window would be the whole chunk again
            continue
        for j, (first, second) in enumerate(list(zip(inside, inside[1:]))[:max_windows]):
            start, end = first.start, second.end
            views.append(View(i, 2 + 2 * j, start, end, f"{first.text} {second.text}", chunk.language))
            english = None if chunk.language == "en" else render(transcript.translation, start, end)
            if english:
                views.append(View(i, 3 + 2 * j, start, end, english, "en"))
    return views
