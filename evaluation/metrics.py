"""Search-quality arithmetic over a labelled query set: parsing, per-query judgement, metrics.

Kept free of models and I/O (beyond reading the query file) so the numbers can be checked by
hand in tests and the same code scores any ranking mode.

Query file: JSON Lines, one object per line (blank lines and lines starting with ``#`` skipped)::

    {"query": "...", "source": "talk.opus", "start": 4.2, "end": 9.9, "tags": ["en", "same-language"]}
    {"query": "...", "answers": [{"source": "a.flac", "start": 1, "end": 3}, {...}], "tags": [...]}
    {"query": "...", "source": "talk.opus", "start": 0, "end": 5, "tags": ["ru"], "split": "held-out"}

``source`` is the basename of the recording's media (or transcript) file; a hit is right when it
comes from that file and overlaps the span (see ``Span.matches``). ``answers`` lists
alternative right answers (the same prompt recorded in two languages): finding any one of them
is a hit. A query wrapped in double quotes is an exact quote and always gets the ``quote`` tag.

``split`` puts a query in the part the ranking is tuned on (``tune``) or in the part kept for
judging it (``held-out``); a file gives every query a split or none. Every metric is reported for
each split beside all queries, so a change that helps only the queries it was tuned on shows.

Language pairs (``en→ru``: asked in English, answered by a Russian recording) are subsets too. The
answer's language is the recording's language as the library holds it (``Recording.language``,
what the search's language filter matches), found by the answer's file name: file names follow no
language convention (``orca_ko.flac``, ``mimic3_kss_rainbow.flac``), the catalog always knows.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping, Protocol

from core.errors import UserError
from index.quotes import quoted

RECALL_CUTOFFS = (1, 5, 10)
NDCG_CUTOFF = 10
MIN_OVERLAP = 1.0  # seconds; labels are padded by 0.5 s each side, so grazing a neighbour stays below this
# Subsets reported first, in this order; any other tag follows alphabetically.
SUBSET_ORDER = ("all", "same-language", "cross-lingual", "quote", "name-number", "en", "ru", "ko")
# The tags that name a query's language.
LANGUAGES = ("en", "ru", "ko")
SPLITS = ("tune", "held-out")


class Located(Protocol):
    """What judging needs from a search hit (``index.library.Hit`` has it)."""

    source: str
    start: float
    end: float


@dataclass(frozen=True)
class Span:
    """One acceptable answer: a stretch of one recording, named by its file's basename."""

    source: str
    start: float
    end: float

    def same_recording(self, hit: Located) -> bool:
        return Path(hit.source).name == self.source

    def matches(self, hit: Located) -> bool:
        """Right recording, and the hit shares at least ``MIN_OVERLAP`` seconds with the span (or
        all of the shorter of the two): a neighbouring sentence grazing the label's padding is
        not the answer."""
        shared = min(hit.end, self.end) - max(hit.start, self.start)
        shorter = min(hit.end - hit.start, self.end - self.start)
        return self.same_recording(hit) and shared >= min(MIN_OVERLAP, shorter)


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    answers: tuple[Span, ...]
    tags: tuple[str, ...] = ()
    split: str | None = None


@dataclass(frozen=True)
class Judgement:
    """How one ranked list did: 1-based rank of the first right span (None: not in the list),
    and whether the top hit is at least the right recording."""

    rank: int | None
    recording_at_1: bool


def is_quote(text: str) -> bool:
    """The search's own rule: straight, curly or «» quotes around the phrase."""
    return quoted(text) is not None


def _span(raw: dict, where: str) -> Span:
    try:
        source, start, end = raw["source"], float(raw["start"]), float(raw["end"])
    except KeyError as exc:
        raise UserError(f"{where}: missing {exc.args[0]!r}") from None
    except (TypeError, ValueError):
        raise UserError(f"{where}: start and end must be numbers of seconds") from None
    if not isinstance(source, str) or not source or "/" in source:
        raise UserError(f"{where}: source must be a file name such as 'talk.opus'")
    if not 0 <= start <= end:
        raise UserError(f"{where}: need 0 <= start <= end, got {start}..{end}")
    return Span(source, start, end)


def parse_query(raw: object, where: str = "query") -> LabelledQuery:
    """One labelled query from its JSON object; ``where`` prefixes every error message."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a JSON object")
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip():
        raise UserError(f"{where}: 'query' must be a non-empty string")
    if "answers" in raw:
        if not isinstance(raw["answers"], list) or not raw["answers"]:
            raise UserError(f"{where}: 'answers' must be a non-empty list of {{source, start, end}}")
        answers = tuple(_span(a if isinstance(a, dict) else {}, f"{where}, answer {i}") for i, a in enumerate(raw["answers"], 1))
    else:
        answers = (_span(raw, where),)
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise UserError(f"{where}: 'tags' must be a list of strings")
    if "quote" in tags and not is_quote(query):
        raise UserError(f"{where}: tagged 'quote' but the query is not wrapped in double quotes")
    if {"same-language", "cross-lingual"} <= set(tags):
        raise UserError(f"{where}: a query is either 'same-language' or 'cross-lingual', not both")
    split = raw.get("split")
    if split is not None and split not in SPLITS:
        raise UserError(f"{where}: 'split' must be 'tune' or 'held-out', not {split!r}")
    tags = list(dict.fromkeys(tags + (["quote"] if is_quote(query) else [])))
    return LabelledQuery(query, answers, tuple(tags), split)


def load_queries(path: Path) -> list[LabelledQuery]:
    """Read a JSONL query file; a malformed line is reported by file and line number."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the query file ({exc.strerror or exc})") from None
    queries = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not valid JSON ({exc.msg})") from None
        queries.append(parse_query(raw, where))
    if not queries:
        raise UserError(f"{path}: no queries in the file")
    if len({label.split is None for label in queries}) > 1:
        raise UserError(f"{path}: give every query a 'split' or none")
    return queries


def judge(label: LabelledQuery, hits: list[Located]) -> Judgement:
    rank = next((i for i, hit in enumerate(hits, 1) if any(a.matches(hit) for a in label.answers)), None)
    top = bool(hits) and any(a.same_recording(hits[0]) for a in label.answers)
    return Judgement(rank, top)


def _cutoffs(k: int) -> list[int]:
    """Recall cutoffs for a run that searched ``k`` deep: those beyond ``k`` would only repeat R@k."""
    return [c for c in RECALL_CUTOFFS if c < k] + [k]


def metric_names(k: int) -> list[str]:
    return [f"R@{c}" for c in _cutoffs(k)] + [f"MRR@{k}", f"nDCG@{min(k, NDCG_CUTOFF)}", "rec-R@1"]


def scores(judgements: list[Judgement], k: int) -> dict[str, float]:
    """Means over the judgements. With one relevant span per query, nDCG is the discounted
    gain of the first right hit, 1/log2(rank+1), since the ideal list has it at rank 1."""
    ranks = [j.rank for j in judgements]
    n = max(len(ranks), 1)

    def mean(values: Iterable[float]) -> float:
        return sum(values) / n

    ndcg_cut = min(k, NDCG_CUTOFF)
    values = [mean(r is not None and r <= c for r in ranks) for c in _cutoffs(k)]
    values += [mean(1 / r for r in ranks if r is not None and r <= k),
               mean(1 / math.log2(r + 1) for r in ranks if r is not None and r <= ndcg_cut),
               mean(j.recording_at_1 for j in judgements)]
    return dict(zip(metric_names(k), values))


def subsets(labels: list[LabelledQuery]) -> dict[str, list[int]]:
    """Indices of the queries in each subset: everything, then one subset per tag."""
    found: dict[str, list[int]] = {"all": list(range(len(labels)))}
    for i, label in enumerate(labels):
        for tag in label.tags:
            found.setdefault(tag, []).append(i)
    order = {name: i for i, name in enumerate(SUBSET_ORDER)}
    return dict(sorted(found.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def aggregate(labels: list[LabelledQuery], judgements: list[Judgement], k: int) -> dict[str, dict[str, float]]:
    """Metrics per subset for one mode's judgements (parallel to ``labels``)."""
    return {name: scores([judgements[i] for i in members], k) for name, members in subsets(labels).items()}


def language_pair(label: LabelledQuery, languages: Mapping[str, str]) -> str | None:
    """``asked→answered`` for a query with one language tag, from ``languages`` (answer file name →
    recording language; ``?`` for a recording the library lacks). As with the ``same-language``
    tag, an answer in the query's own language makes the pair same-language; alternative answers
    in two other languages give both (``en→ko+ru``)."""
    asked = [tag for tag in label.tags if tag in LANGUAGES]
    if len(asked) != 1:
        return None
    answered = sorted({languages.get(answer.source, "?") for answer in label.answers})
    return f"{asked[0]}→{asked[0] if asked[0] in answered else '+'.join(answered)}"


def with_pairs(labels: list[LabelledQuery], languages: Mapping[str, str]) -> list[LabelledQuery]:
    """Each label with its language pair as one more tag, so every pair is a subset."""
    return [replace(label, tags=label.tags + (pair,)) if (pair := language_pair(label, languages)) else label
            for label in labels]


def splits(labels: list[LabelledQuery]) -> dict[str, list[int]]:
    """Indices of the queries in each split present, in ``SPLITS`` order (none for a file without splits)."""
    found = {name: [i for i, label in enumerate(labels) if label.split == name] for name in SPLITS}
    return {name: members for name, members in found.items() if members}


def aggregate_splits(labels: list[LabelledQuery], judgements: list[Judgement], k: int) -> dict[str, dict[str, dict[str, float]]]:
    """``aggregate`` within each split: split → subset → metric."""
    return {name: aggregate([labels[i] for i in members], [judgements[i] for i in members], k)
            for name, members in splits(labels).items()}
