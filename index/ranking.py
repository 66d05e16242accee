"""Turning candidate chunks into a ranked list: filters, fusion of keyword and vector rankings,
and folding of overlapping chunks into one hit."""
from __future__ import annotations

from dataclasses import dataclass, fields

from core.validation import iso_date
from ingest.records import Chunk

# Reciprocal-rank-fusion constant from Cormack et al.; large enough that rank 1 and 2 are close.
RRF_K = 60
# A chunk whose English rendering agrees with its words below this (cosine of the two whole-chunk
# vectors) has a rendering of low confidence: whisper base turns some speech into fluent nonsense.
# Measured on the evaluation library: garbled renderings of misheard Korean news 0.07-0.46, good
# renderings 0.44-0.72 (the human English of the Korean demo talk 0.44-0.65).
LOW_RENDERING = 0.4
# A match through such a rendering loses this much score per unit of confidence below the line, so
# nonsense English cannot carry a chunk to the top; on the development set no ranking moved.
RENDERING_PENALTY = 0.5
# Scripts whose words a query written otherwise can share only as names, numbers and loanwords.
SCRIPTS = {"ko": "hangul", **dict.fromkeys(("ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "tg", "mn"), "cyrillic")}


@dataclass
class SearchFilters:
    """Which hits a user wants; metadata fields match case-insensitively, dates are ISO strings."""

    language: str | None = None
    recordings: list[str] | None = None
    event: str | None = None
    session: str | None = None
    speaker: str | None = None
    date_from: str | None = None
    date_to: str | None = None

    def __post_init__(self) -> None:
        for bound in (self.date_from, self.date_to):
            if bound is not None:
                iso_date(bound)

    @property
    def empty(self) -> bool:
        """True when nothing is filtered (every chunk is admitted)."""
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass
class FusionSettings:
    """How keyword evidence joins the vector ranking.

    A keyword hit counts in proportion to the share of query terms it holds, only when it holds
    at least ``min_coverage`` of them, and only when its BM25 score is within ``floor`` of the
    best keyword hit: a chunk that shares one word ("5G", a name) with the query must not outvote
    the vector ranking, which is what carries cross-lingual queries. On the development set
    (tests/eval) fusion without the coverage rule lost to dense alone (MRR 0.82 vs 0.88, cross-
    lingual 0.72 vs 0.84); with it, hybrid leads overall and equals dense on cross-lingual queries.

    A chunk written in another script than the query (Hangul, Cyrillic or the rest), with no
    English rendering for a query in the rest, can share only names, numbers and Latin-script
    loanwords with it, and those point at every other mention of the name as much as at the moment
    asked for. Such matches count ``foreign_weight`` times. Decided on the tuning parts: real
    subtitles (120 queries, en→ko and ko→en, no renderings) hybrid R@1 / R@5 / MRR 0.675 / 0.917 /
    0.776 at weight 1, 0.683 / 0.917 / 0.783 at 0.25, 0.692 / 0.925 / 0.790 at 0 (dense alone: the
    same); development tuning part unchanged at every weight. Held out, the reported 200 subtitle
    queries: 0.675 / 0.895 / 0.770 → 0.685 / 0.895 / 0.777 (dense 0.685 / 0.890 / 0.775); the
    development held-out part unchanged.
    """

    lexical_weight: float = 1.0
    floor: float = 0.3
    min_coverage: float = 0.5
    foreign_weight: float = 0.0


def script(language: str) -> str:
    """The writing system a language's words are in, as far as fusion tells them apart."""
    return SCRIPTS.get(language, "other")


def shares_script(chunk: Chunk, language: str) -> bool:
    """Whether a chunk holds words in the script of a query in ``language``: its own, or its
    English rendering."""
    asked = script(language)
    return script(chunk.language) == asked or (asked == "other" and bool(chunk.translation))


def fuse(dense: list[tuple[Chunk, float]], lexical: list[tuple[Chunk, float, float]],
         settings: FusionSettings | None = None, language: str | None = None) -> list[tuple[Chunk, float]]:
    """Weighted reciprocal rank fusion; returns (chunk, fused score), best first. ``language``:
    the query's (None: every keyword match counts in full)."""
    settings = settings or FusionSettings()
    scores: dict[int, float] = {}
    chunks: dict[int, Chunk] = {}
    for rank, (chunk, _) in enumerate(dense):
        chunks[chunk.id] = chunk
        scores[chunk.id] = 1.0 / (RRF_K + rank + 1)
    top = lexical[0][1] if lexical else 0.0
    kept = [(chunk, coverage) for chunk, score, coverage in lexical
            if score >= settings.floor * top and coverage >= settings.min_coverage]
    for rank, (chunk, coverage) in enumerate(kept):
        chunks.setdefault(chunk.id, chunk)
        weight = settings.lexical_weight * (1.0 if language is None or shares_script(chunk, language) else settings.foreign_weight)
        scores[chunk.id] = scores.get(chunk.id, 0.0) + weight * coverage / (RRF_K + rank + 1)
    return sorted(((chunks[i], s) for i, s in scores.items()), key=lambda pair: -pair[1])


def merge_overlapping(ranked: list[tuple[Chunk, float]], tie: float = 0.01, limit: int | None = None) -> list[tuple[Chunk, float]]:
    """Fold chunks of one recording that overlap in time into one hit, best score first.

    Neighbouring chunks share a sentence, so a good passage often surfaces twice; a user wants
    it once. The hit grows to span both only when the neighbour scores within ``tie`` (relative)
    of it; otherwise the weaker neighbour is absorbed: hits stay as tight as the evidence.
    With ``limit``, stops once that many hits are final (nothing weaker could widen them).
    """
    merged: list[tuple[Chunk, float]] = []
    for chunk, score in sorted(ranked, key=lambda pair: -pair[1]):
        # merged bests descend (hits are appended best first), so the last and first bound them all
        if limit is not None and len(merged) >= limit and merged[-1][1] - score > tie * max(abs(merged[0][1]), abs(merged[-1][1])):
            break
        for i, (kept, best) in enumerate(merged):
            if kept.recording_id != chunk.recording_id or chunk.start >= kept.end or kept.start >= chunk.end:
                continue
            if best - score <= tie * abs(best):
                merged[i] = (_span(kept, chunk), best)
            break
        else:
            merged.append((chunk, score))
    return merged[:limit] if limit is not None else merged


def _span(a: Chunk, b: Chunk) -> Chunk:
    """One chunk covering two overlapping ones, text stitched without repeating the overlap."""
    first, second = (a, b) if a.start <= b.start else (b, a)
    if second.end <= first.end:
        return first
    known = [c.translation_confidence for c in (first, second) if c.translation_confidence is not None]
    return Chunk(first.recording_id, first.start, second.end, first.language, _stitch(first.text, second.text),
                 _stitch(first.translation, second.translation), first.seq, first.id, first.speaker,
                 min(known) if known else None)


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


def doubt(chunk: Chunk, through_english: bool) -> float:
    """What a match through the chunk's English rendering loses when that rendering is of low confidence."""
    confidence = chunk.translation_confidence
    if not through_english or confidence is None or confidence >= LOW_RENDERING:
        return 0.0
    return RENDERING_PENALTY * (LOW_RENDERING - confidence)
