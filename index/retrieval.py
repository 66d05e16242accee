"""Retrieval per ranking mode: each turns a query into ranked (chunk, score, window span) candidates.

Filters go down to the store (SQL for records and keywords, an ID selector for vectors), so a
selective filter ranks exactly the admitted chunks instead of thinning a fixed candidate pool.
"""
from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ingest.records import Chunk

from .centering import query_language
from .clips import Span
from .quotes import contains, locate, near
from .ranking import FusionSettings, SearchFilters, doubt, fuse, merge_overlapping
from .store import Store
from .vectors import ENGLISH, ORIGINAL, in_english

Ranked = list[tuple[Chunk, float, Span | None]]


@dataclass
class Candidates:
    """What one search works over: the query, how to embed it (None for keywords alone) and
    filters. The vector is made on first use, so a hybrid search can look its keywords up while
    the query is being embedded."""

    text: str
    embed: Callable[[str], np.ndarray] | None
    filters: SearchFilters
    pool: int
    _vector: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def vector(self) -> np.ndarray | None:
        """Made by the search's own thread (not ``functools.cached_property``, which before Python
        3.12 holds one lock for every instance: concurrent searches would embed one at a time)."""
        if self._vector is None and self.embed is not None:
            self._vector = self.embed(self.text)
        return self._vector

    def allowed(self, store: Store) -> np.ndarray | None:
        """Chunk ids the filters admit (None: no filter, every chunk)."""
        return None if self.filters.empty else store.records.chunk_ids(self.filters)


class DenseRetriever:
    """Vector ranking: each chunk scores its best view; a window view brings its seconds."""

    def __init__(self, store: Store):
        self.store = store

    def __call__(self, query: Candidates) -> Ranked:
        found = self.store.vectors.search(query.vector, query.pool, query.allowed(self.store))
        chunks = self.store.records.chunks([c for c, _, _ in found])
        spans = self.store.records.window_spans([(c, v) for c, _, v in found if v not in (ORIGINAL, ENGLISH)])
        ranked = [(chunks[c], score - doubt(chunks[c], in_english(v)), spans.get((c, v))) for c, score, v in found if c in chunks]
        return sorted(ranked, key=lambda item: -item[1])


class KeywordRetriever:
    """BM25 over analysed terms; the score's companion is the share of query terms a chunk holds."""

    def __init__(self, store: Store):
        self.store = store

    def matches(self, text: str, k: int, filters: SearchFilters, floor: float | None = None) -> list[tuple[Chunk, float, float]]:
        """(chunk, BM25 score, share of the query's terms it holds). The share is worked out only
        with a ``floor`` and only for chunks scoring at least ``floor`` times the best (fusion
        drops the rest); it is 0 otherwise."""
        terms = sorted(set(self.store.analyzer.keys(text)))
        found = self.store.keywords.search(terms, k, filters)
        chunks = self.store.records.chunks([i for i, _ in found])
        held = {}
        if floor is not None and found:
            held = self.store.keywords.holding([i for i, score in found if score >= floor * found[0][1]], terms)
        return [(chunks[i], score, len(held.get(i, ())) / len(terms)) for i, score in found if i in chunks]

    def __call__(self, query: Candidates) -> Ranked:
        return [(c, s, None) for c, s, _ in self.matches(query.text, query.pool, query.filters)]


class HybridRetriever:
    """Vector and keyword rankings fused (see ``ranking.FusionSettings`` for how keywords count).

    The keyword side needs no vector, so it runs on ``helper`` while this thread embeds the query
    and walks the vectors, on the other core (ONNX Runtime, tantivy and SQLite let go of the GIL):
    its ~2.5 ms at 100k chunks leave the search's path. With the Korean shaping savings of
    ``clips`` (same run, 100k-chunk synthetic library, 2 cores, old and new code alternating):
    in-process p50 20.0 → 16.8 ms (Korean 34.5 → 22.9), over HTTP p50 / p99 21.9 / 49.4 →
    19.8 / 33.5 ms, 8 clients p50 143 → 134 ms."""

    def __init__(self, dense: DenseRetriever, keywords: KeywordRetriever, fusion: FusionSettings, helper: Executor):
        self.dense, self.keywords, self.fusion, self.helper = dense, keywords, fusion, helper

    def __call__(self, query: Candidates) -> Ranked:
        lexical = self.helper.submit(self.keywords.matches, query.text, query.pool, query.filters, self.fusion.floor)
        dense = self.dense(query)
        windows = {c.id: span for c, _, span in dense if span}
        fused = fuse([(c, s) for c, s, _ in dense], lexical.result(), self.fusion, query_language(query.text))
        return [(c, s, windows.get(c.id)) for c, s in fused]


class QuoteRetriever:
    """Chunks holding a quoted phrase, each tightened to the quoted words' own timestamps."""

    def __init__(self, store: Store, keywords: KeywordRetriever):
        self.store, self.keywords = store, keywords

    def __call__(self, phrase: str, k: int, filters: SearchFilters) -> Ranked:
        found: Ranked = []
        for chunk, _, _ in self.keywords.matches(phrase, 1000, filters):
            if not contains(chunk.text, phrase) and not contains(chunk.translation or "", phrase):
                continue
            passage = self.store.records.passage(chunk.recording_id, chunk.start, chunk.end)
            span = locate([w for s in passage.segments for w in s.words], phrase)
            if span is None:  # no word timings (imported subtitles) or the phrase is in the English: whole cue(s)
                holding = [s for s in passage.segments if contains(s.text, phrase) or contains(s.translation or "", phrase)]
                span = (holding[0].start, holding[-1].end) if holding else (chunk.start, chunk.end)
            if not _seen(found, chunk, span):
                found.append((chunk, 1.0, span))
        return sorted(found, key=lambda item: (item[0].recording_id, item[2][0]))[:k]

    def near(self, phrase: str, candidates: Ranked, k: int) -> Ranked:
        """Where no transcript holds the phrase exactly: candidates whose words spell it nearly,
        most similar first, scored by that similarity (0-1) and tightened to those words."""
        passages = self.store.records.passages([(c.recording_id, c.start, c.end) for c, _, _ in candidates])
        scored = []
        for (chunk, _, _), passage in zip(candidates, passages):
            words = [w for s in passage.segments for w in s.words] or passage.segments  # cues, without word timings
            match = near(words, phrase)
            if match is not None:
                scored.append((chunk, match[2], match[:2]))
        found: Ranked = []
        for chunk, similarity, span in sorted(scored, key=lambda item: -item[1]):
            if not _seen(found, chunk, span):
                found.append((chunk, similarity, span))
        return found[:k]


def _seen(found: Ranked, chunk: Chunk, span: Span) -> bool:
    """The same occurrence, already found through an overlapping chunk."""
    return any(c.recording_id == chunk.recording_id and round(s[0], 2) == round(span[0], 2) for c, _, s in found)


def top(ranked: Ranked, k: int) -> Ranked:
    """Overlapping chunks of one recording folded into one hit, best ``k``; a folded hit keeps
    the window span of its best chunk when the span lies inside it."""
    windows = {c.id: span for c, _, span in ranked if span}
    merged = merge_overlapping([(c, s) for c, s, _ in ranked], limit=k)
    return [(c, s, windows.get(c.id)) for c, s in merged]
