"""Shaping a retrieved chunk into a hit: the seconds that answer the query, on word boundaries,
the words as spoken, the English rendering and the character ranges to highlight.

Everything here reads what ingest stored (sentences, words, window spans and their vectors):
no model runs at query time beyond the one query embedding (at 100k chunks, embedding candidate
sentences per query cost 0.73 s of a 1.46 s search).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ingest.align import render
from ingest.chunking import Sentence, sentences
from ingest.records import Chunk, Recording, Transcript

from .catalog import StoredSentence
from .lexical import Analyzer
from .ranking import LOW_RENDERING
from .store import Store
from .vectors import SENTENCE_VIEWS


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
    # A quote found only as a near spelling (recognition erred, or the quote is misremembered).
    approximate: bool = False
    # Who says it: the name given to the voice, its diarization label, or the recording's speaker.
    speaker: str | None = None
    # How far the English rendering means what was said (cosine, see Chunk), and whether that is
    # below ``ranking.LOW_RENDERING``: then it is shown as a machine rendering of low confidence.
    translation_confidence: float | None = None
    translation_doubtful: bool = False


Span = tuple[float, float]
Piece = tuple[int, str]  # a part of a hit's words, and the character it starts at
Marks = tuple[list[list[int]], list[Piece]]  # highlights placed at ingest, and the parts left to analyse
# How many hits get their span narrowed by meaning when no sentence shares a query word.
FOCUS_BY_MEANING = 3
# A neighbour whose similarity is this close to the best sentence's stays in the clip.
FOCUS_MARGIN = 0.06


def _rounded(start: float, end: float) -> Span:
    """A sentence's span as a key: stored and recomputed spans come from the same word times."""
    return round(start, 2), round(end, 2)


def _stored_parts(stored: dict[Span, StoredSentence], unit: Sentence) -> list[tuple[Span, StoredSentence]] | None:
    """The stored sentences a sentence is, in order: its own row, or the rows of the stored
    sentences it is made of (a run-on sentence is split at its widest pause, which depends on where
    the passage starts); None when stored sentences do not make it up."""
    start, end = _rounded(unit.start, unit.end)
    if (start, end) in stored:
        return [((start, end), stored[(start, end)])]
    inside = sorted(span for span in stored if span[0] >= start - 0.01 and span[1] <= end + 0.01)
    if not inside or abs(inside[0][0] - start) > 0.01 or abs(max(e for _, e in inside) - end) > 0.01:
        return None
    return [(span, stored[span]) for span in inside]


def _stored_terms(stored: dict[Span, StoredSentence], unit: Sentence) -> set[str] | None:
    """A sentence's terms as stored at ingest (see ``_stored_parts``); None when not stored."""
    parts = _stored_parts(stored, unit)
    return None if parts is None else set().union(*(sentence.terms for _, sentence in parts))


def _closest(spans: list[Span], similarity: np.ndarray, margin: float) -> Span:
    """Span of the most similar sentence, widened to a neighbour that is nearly as similar:
    meaning is a weaker signal than shared words, so a close call keeps both sentences."""
    best = int(np.argmax(similarity))
    lo = hi = best
    neighbours = [j for j in (best - 1, best + 1) if 0 <= j < len(spans)]
    if neighbours:
        runner = max(neighbours, key=lambda j: similarity[j])
        if similarity[best] - similarity[runner] <= margin:
            lo, hi = min(best, runner), max(best, runner)
    return spans[lo][0], spans[hi][1]


class ClipShaper:
    """Turns (chunk, score, span) candidates into hits; reads passages once per hit."""

    def __init__(self, store: Store):
        self.store = store
        self._names: dict[tuple[str, str], str] = {}  # (recording id, label) → given name
        self._named: set[str] = set()  # recordings whose names are in _names

    @property
    def analyzer(self) -> Analyzer:
        return self.store.analyzer

    def passage(self, chunk: Chunk) -> Transcript:
        return self.store.records.passage(chunk.recording_id, chunk.start, chunk.end)

    @staticmethod
    def sentences(chunk: Chunk, passage: Transcript) -> list[Sentence]:
        return [u for u in sentences(passage.segments, 40.0) if u.start >= chunk.start - 0.01 and u.end <= chunk.end + 0.01]

    def shape(self, ranked: list[tuple[Chunk, float, Span | None]], query: str, vector: np.ndarray | None) -> list[Hit]:
        """Hits focused on the sentence(s) that answer the query (see ``focus``). Sentences are
        looked at only in chunks whose stored terms share one with the query."""
        recordings = self.store.records.recordings_by_id({chunk.recording_id for chunk, _, _ in ranked})
        self.names(set(recordings))
        terms = set(self.analyzer.keys(query))
        may_hold = self.may_hold([chunk for chunk, _, _ in ranked], terms)
        passages = self.store.records.passages([(chunk.recording_id, chunk.start, chunk.end) for chunk, _, _ in ranked])
        units = [self.sentences(chunk, passage) for (chunk, _, _), passage in zip(ranked, passages)]
        stored = [self.store.records.sentence_terms(chunk.recording_id, chunk.start, chunk.end) if holds else {}
                  for (chunk, _, _), holds in zip(ranked, may_hold)]
        shared = [self.shared(group, known, passage, terms) if holds else []
                  for group, known, passage, holds in zip(units, stored, passages, may_hold)]
        hits = [self.hit(chunk, passage, group, score, recordings[chunk.recording_id],
                         self.focus(chunk, group, counts, window, vector, rank))
                for rank, ((chunk, score, window), passage, group, counts) in enumerate(zip(ranked, passages, units, shared))]
        return self.highlight(hits, terms, [_marks(hit, group, counts, known, passage, terms) if holds else ([], [])
                                            for hit, group, counts, known, passage, holds
                                            in zip(hits, units, shared, stored, passages, may_hold)])

    def may_hold(self, chunks: list[Chunk], terms: set[str]) -> list[bool]:
        """Whether each hit's words may hold a query term: its chunk holds one (stored at ingest),
        or the hit is not a stored chunk as it is (overlapping chunks folded into one hit)."""
        ids = [chunk.id for chunk in chunks if chunk.id is not None]
        held = self.store.keywords.holding(ids, sorted(terms))
        stored = self.store.records.chunks(ids)
        return [chunk.id is None or bool(held.get(chunk.id)) or chunk.id not in stored
                or (stored[chunk.id].start, stored[chunk.id].end) != (chunk.start, chunk.end) for chunk in chunks]

    def shared(self, units: list[Sentence], stored: dict[Span, StoredSentence], passage: Transcript, terms: set[str]) -> list[int]:
        """How many query terms each sentence holds, from the terms stored at ingest (a sentence
        neither stored nor made of stored ones, e.g. cut differently at a merged hit's edge, is
        analysed now)."""
        known = [_stored_terms(stored, u) for u in units]
        missing = [f"{u.text} {render(passage.translation, u.start, u.end) or ''}" for u, k in zip(units, known) if k is None]
        analysed = iter(self.analyzer.terms_many(missing, self.analyzer.has_korean(terms)))
        return [len(terms & (k if k is not None else {t.text for t in next(analysed)})) for k in known]

    def focus(self, chunk: Chunk, units: list[Sentence], shared: list[int], window: Span | None,
              vector: np.ndarray | None, rank: int) -> Span | None:
        """The span of the sentence(s) that match the query best (``shared``: query terms each
        sentence holds, in its words or its English rendering; empty when none can).

        The sentence sharing most query terms wins, together with adjacent sentences that share
        terms too. Sentences sharing as many terms are told apart by meaning (their vectors stored
        at ingest) in the top ``FOCUS_BY_MEANING`` hits, further down by the view that matched
        (``window``): the first of them was taken before, and an English query's loanword («CoC»)
        in several Korean sentences then placed 3 of 120 tuning subtitle hits on the wrong one.
        Where no sentence shares a term (a cross-lingual query), the top hits take the sentence
        closest in meaning (with a nearly-as-close neighbour), and hits further down the window
        whose vector matched best, or their whole chunk. Windows tie too often to place the top
        hits: the English rendering of two overlapping windows is often the same text.
        """
        most = max(shared, default=0)
        tied = [i for i, count in enumerate(shared) if most and count == most]
        meaning = self.meaning(chunk, vector) if rank < FOCUS_BY_MEANING and len(tied) != 1 else {}
        if not most:
            if len(meaning) < 2:
                return window
            spans = sorted(meaning)
            return _closest(spans, np.array([meaning[span] for span in spans]), FOCUS_MARGIN)
        if meaning:
            best = max(tied, key=lambda i: meaning.get(_rounded(units[i].start, units[i].end), -np.inf))
        else:
            covered = [i for i in tied if window and units[i].start < window[1] - 0.01 and units[i].end > window[0] + 0.01]
            best = (covered or tied)[0]
        lo = hi = best
        while lo > 0 and shared[lo - 1]:
            lo -= 1
        while hi < len(units) - 1 and shared[hi + 1]:
            hi += 1
        return units[lo].start, units[hi].end

    def meaning(self, chunk: Chunk, vector: np.ndarray | None) -> dict[Span, float]:
        """The similarity to the query of each of the chunk's sentences, by their span (rounded
        as ``_rounded``), from the sentence vectors stored at ingest: empty for a chunk of one
        sentence or a hit that is not a stored chunk."""
        if vector is None or chunk.id is None:
            return {}
        views, vectors = self.store.vectors.views(chunk.id)
        sentences = np.flatnonzero(views >= SENTENCE_VIEWS)
        keys = [(chunk.id, int(views[i])) for i in sentences]
        spans = self.store.records.window_spans(keys)
        return {_rounded(*spans[key]): float(vectors[i] @ vector) for key, i in zip(keys, sentences) if key in spans}

    def hit(self, chunk: Chunk, passage: Transcript, units: list[Sentence], score: float, recording: Recording,
            span: Span | None = None, approximate: bool = False) -> Hit:
        """A hit on word boundaries around ``span`` (the whole chunk when None), not yet highlighted."""
        start, end = span or (chunk.start, chunk.end)
        inside = [u for u in units if u.end > start and u.start < end]
        text = " ".join(u.text for u in inside) if inside else chunk.text
        if inside and span and (inside[0].start < start - 0.01 or inside[-1].end > end + 0.01):
            words = [w for s in passage.segments for w in s.words if w.start >= start - 0.01 and w.end <= end + 0.01]
            text = "".join(w.text for w in words).strip() or text
        translation = None if chunk.language == "en" else (render(passage.translation, start, end) or chunk.translation)
        confidence = chunk.translation_confidence if translation else None
        return Hit(chunk.recording_id, recording.title, recording.source, round(start, 2), round(end, 2), chunk.language,
                   text, translation, round(score, 4), approximate=approximate,
                   speaker=self.speaker(recording, inside, chunk.speaker), translation_confidence=confidence,
                   translation_doubtful=confidence is not None and confidence < LOW_RENDERING)

    def speaker(self, recording: Recording, units: list[Sentence], label: str | None) -> str | None:
        """The voice talking longest in ``units`` (``label``, the chunk's, when they have none), by name."""
        talk: dict[str, float] = {}
        for unit in units:
            if unit.speaker is not None:
                talk[unit.speaker] = talk.get(unit.speaker, 0.0) + unit.end - unit.start
        label = max(talk, key=talk.__getitem__) if talk else label
        if label is None:
            return recording.speaker
        self.names({recording.id})
        return self._names.get((recording.id, label), label)

    def names(self, recording_ids: set[str]) -> None:
        """Read the given names of these recordings' voices (once a shaper, in one query)."""
        missing = recording_ids - self._named
        if missing:
            self._names.update(self.store.records.speaker_names(missing))
            self._named |= missing

    def highlight(self, hits: list[Hit], terms: set[str], marks: list[Marks] | None = None) -> list[Hit]:
        """Character ranges of the query's terms in each hit's words and English. Of a hit's words
        only the parts ``marks`` leave to analyse are (all of them when None), in one batch: Kiwi's
        analysis of ten Korean hits was ~7 ms of a Korean search's ~37 at 100k chunks. The English
        is analysed whole (cheap, and rendered over the hit's span it can reach past its chunk's)."""
        if not terms:
            return hits
        marks = marks if marks is not None else [([], [(0, hit.text)]) for hit in hits]
        texts = [hit.translation or "" for hit in hits] + [text for _, pieces in marks for _, text in pieces]
        analysed = iter(self.analyzer.terms_many(texts, self.analyzer.has_korean(terms)))
        english = [next(analysed) for _ in hits]
        for hit, rendered, (known, pieces) in zip(hits, english, marks):
            hit.translation_highlights = [[t.start, t.end] for t in rendered if t.text in terms]
            found = [[at + t.start, at + t.end] for at, _ in pieces for t in next(analysed) if t.text in terms]
            hit.highlights = sorted(known + found)
        return hits


def _marks(hit: Hit, units: list[Sentence], shared: list[int], stored: dict[Span, StoredSentence], passage: Transcript,
           terms: set[str]) -> Marks:
    """The query's terms in a hit's words, as far as ingest placed them, and the parts of its words
    still to analyse. Only sentences whose terms share one with the query (``shared``) are looked
    at, each found in the hit's words in order; one whose stored sentences kept their terms'
    places needs no analysis. All the words are left to analyse when a sentence is not in them as
    it is (a hit cut inside a sentence)."""
    inside = [(unit, count) for unit, count in zip(units, shared) if unit.end > hit.start + 0.01 and unit.start < hit.end - 0.01]
    if not inside:  # the words are the chunk's own text
        return [], [(0, hit.text)]
    known: list[list[int]] = []
    pieces: list[Piece] = []
    at = 0
    for unit, count in inside:
        found = hit.text.find(unit.text, at)
        if found < 0:
            return [], [(0, hit.text)]
        at = found + len(unit.text)
        if count:
            placed = _placed(unit, found, _stored_parts(stored, unit), hit.text, passage, terms)
            if placed is None:
                pieces.append((found, unit.text))
            else:
                known += placed
    return known, pieces


def _placed(unit: Sentence, found: int, parts: list[tuple[Span, StoredSentence]] | None, text: str,
            passage: Transcript, terms: set[str]) -> list[list[int]] | None:
    """Where the query's terms sit in a sentence found at ``found`` in a hit's words, from the
    places its stored sentences kept; None when they kept none, or one is not found in order."""
    if parts is None or any(sentence.spoken is None for _, sentence in parts):
        return None
    if len(parts) == 1:
        return [[found + t.start, found + t.end] for t in parts[0][1].spoken if t.text in terms]
    words = [w for segment in passage.segments for w in segment.words if unit.start - 0.01 <= w.start and w.end <= unit.end + 0.01]
    placed, at = [], found
    for (start, end), sentence in parts:
        said = "".join(w.text for w in words if w.start >= start - 0.01 and w.end <= end + 0.01).strip()
        where = text.find(said, at) if said else -1
        if where < 0:
            return None
        placed += [[where + t.start, where + t.end] for t in sentence.spoken if t.text in terms]
        at = where + len(said)
    return placed
