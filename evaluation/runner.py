"""``talksearch eval``: run a labelled query set against a library in each ranking mode and
print recall@k, MRR and nDCG side by side, so a ranking change is judged on numbers: for all
queries and, when the file splits them, for the tuning part and the held-out part beside it; per
subset, language pairs (``en→ru``) included."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.table import Table

from core.errors import UserError
from index.library import SEARCH_MODES, SearchRequest
from index.ranking import SearchFilters
from ingest.records import Recording

from .metrics import (Judgement, LabelledQuery, Located, aggregate, aggregate_splits, judge, load_queries, metric_names,
                      splits, subsets, with_pairs)


class Searchable(Protocol):
    """What the runner asks of a library (the service has it): its searches and its recordings."""

    where: str

    def search(self, request: SearchRequest) -> list[Located]: ...

    def recordings(self) -> list[Recording]: ...


@dataclass
class ModeRun:
    """One mode over the whole set: a judgement per query, or why the mode could not run."""

    judgements: list[Judgement] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    # How long each answered query's first hit is: a wider span overlaps a label more easily.
    top_seconds: list[float] = field(default_factory=list)
    error: Exception | None = None


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in SEARCH_MODES]
    if unknown or not modes:
        raise UserError(f"--modes: unknown mode(s) {', '.join(unknown) or '(none given)'}; use {', '.join(SEARCH_MODES)}")
    return list(dict.fromkeys(modes))


def run_mode(app: Searchable, labels: list[LabelledQuery], mode: str, k: int,
             languages: list[str | None] | None = None) -> ModeRun:
    """Every query in one mode. A mode that raises (not implemented yet, broken) is reported as
    unavailable rather than ending the comparison of the others. ``languages``: each query's
    search language filter (none given: unfiltered)."""
    languages = languages or [None] * len(labels)
    run = ModeRun()
    try:
        app.search(SearchRequest(labels[0].query, k, mode, SearchFilters(language=languages[0])))  # untimed: model loading stays out of the latency
        for label, language in zip(labels, languages):
            started = time.perf_counter()
            hits = app.search(SearchRequest(label.query, k, mode, SearchFilters(language=language)))
            run.seconds.append(time.perf_counter() - started)
            run.judgements.append(judge(label, hits))
            if hits:
                run.top_seconds.append(hits[0].end - hits[0].start)
    except Exception as exc:  # noqa: BLE001 - any failure makes just this mode unavailable
        return ModeRun(error=exc)
    return run


def report(labels: list[LabelledQuery], runs: dict[str, ModeRun], k: int) -> dict:
    """Everything ``--json`` prints: counts, metrics per mode and subset (``metrics``: all
    queries; ``splits``: each split's own, when the file has them), and each query's rank per mode
    (where the ranking work should look)."""
    modes = {}
    for mode, run in runs.items():
        if run.error is not None:
            modes[mode] = {"available": False, "error": f"{type(run.error).__name__}: {run.error}"}
        else:
            modes[mode] = {"available": True, "latency_ms": round(1000 * sum(run.seconds) / len(run.seconds), 1),
                           "top_hit_seconds": round(sum(run.top_seconds) / max(len(run.top_seconds), 1), 1),
                           "metrics": aggregate(labels, run.judgements, k), "splits": aggregate_splits(labels, run.judgements, k)}
    ok = {mode: run for mode, run in runs.items() if run.error is None}
    per_query = [{"query": label.query, "tags": list(label.tags), "split": label.split,
                  "rank": {mode: run.judgements[i].rank for mode, run in ok.items()},
                  "recording_at_1": {mode: run.judgements[i].recording_at_1 for mode, run in ok.items()}}
                 for i, label in enumerate(labels)]
    return {"queries": len(labels), "k": k, "subsets": _counts(labels),
            "splits": {name: _counts([labels[i] for i in members]) for name, members in splits(labels).items()},
            "modes": modes, "per_query": per_query}


def _counts(labels: list[LabelledQuery]) -> dict[str, int]:
    return {name: len(members) for name, members in subsets(labels).items()}


def print_report(result: dict, console: Console) -> None:
    """Rows: each metric within each subset; columns: per mode, each split and then all queries.
    The best mode per row and part is bold."""
    modes, parts = result["modes"], [*result["splits"], "all"]

    def metrics(mode: dict, part: str) -> dict:
        return mode["metrics"] if part == "all" else mode["splits"][part]

    def count(part: str, subset: str) -> int:
        return result["subsets"][subset] if part == "all" else result["splits"][part].get(subset, 0)

    split = len(parts) > 1
    table = Table(title=f"{result['queries']} queries, searched {result['k']} deep")
    table.add_column("subset")
    table.add_column(f"n ({' / '.join(parts)})" if split else "n", justify="right")
    table.add_column("metric")
    for mode in modes:
        for part in parts:
            table.add_column(f"{mode}\n{part}" if split else mode, justify="right")
    for subset in result["subsets"]:
        for i, metric in enumerate(metric_names(result["k"])):
            cells = []
            for part in parts:
                values = {m: metrics(r, part)[subset][metric] for m, r in modes.items()
                          if r["available"] and subset in metrics(r, part)}
                best = max(values.values(), default=None)
                cells.append([_cell(values.get(m), bold=len(values) > 1 and values.get(m) == best) for m in modes])
            row = [cell for by_mode in zip(*cells) for cell in by_mode]  # mode-major, as the columns
            shown = " / ".join(str(count(part, subset)) for part in parts)
            table.add_row(subset if i == 0 else "", shown if i == 0 else "", metric, *row)
        table.add_section()
    console.print(table)
    for mode, r in modes.items():
        note = (f"mean search latency {r['latency_ms']:.1f} ms, first hit {r['top_hit_seconds']:.1f} s long on average"
                if r["available"] else f"unavailable ({r['error']})")
        console.print(f"{mode}: {note}", highlight=False)


def _cell(value: float | None, bold: bool) -> str:
    if value is None:
        return "—"
    return f"[bold]{value:.3f}[/bold]" if bold else f"{value:.3f}"


def warn_missing(library: str, labels: list[LabelledQuery], languages: dict[str, str]) -> None:
    """Labels naming recordings the library lacks would silently score zero: say so."""
    missing = sorted({a.source for label in labels for a in label.answers} - set(languages))
    if missing:
        print(f"talksearch: warning: {len(missing)} labelled recording(s) not in {library}: "
              f"{', '.join(missing)}; their queries count as misses", file=sys.stderr)


def load_labels(app: Searchable, queries: Path) -> list[LabelledQuery]:
    """The query file's labels, each tagged with its language pair as the library holds it."""
    labels = load_queries(queries)
    languages = {Path(r.source).name: r.language for r in app.recordings()}  # labels name recordings by file name
    warn_missing(app.where, labels, languages)
    return with_pairs(labels, languages)


def run_eval(app: Searchable, queries: Path, k: int, modes: str, console: Console | None) -> int:
    """Score the query file in each mode; print the table on ``console``, or JSON without one."""
    if k < 1:
        raise UserError("--k must be at least 1")
    labels = load_labels(app, queries)
    chosen = parse_modes(modes)
    runs = {mode: run_mode(app, labels, mode, k) for mode in chosen}
    if all(run.error is not None for run in runs.values()):
        raise next(iter(runs.values())).error  # nothing to compare: the library itself is the problem
    result = report(labels, runs, k)
    if console is None:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print_report(result, console)
    return 0
