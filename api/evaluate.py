"""``talksearch eval``: run a labelled query set against a library in each ranking mode and
print recall@k, MRR and nDCG side by side, so a ranking change is judged on numbers."""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from index.evaluation import Judgement, LabelledQuery, aggregate, judge, load_queries, metric_names, subsets
from index.library import SEARCH_MODES, SearchRequest

from .config import Settings
from .render import console
from .service import Talksearch


@dataclass
class ModeRun:
    """One mode over the whole set: a judgement per query, or why the mode could not run."""

    judgements: list[Judgement] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    error: Exception | None = None


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in SEARCH_MODES]
    if unknown or not modes:
        raise ValueError(f"--modes: unknown mode(s) {', '.join(unknown) or '(none given)'}; use {', '.join(SEARCH_MODES)}")
    return list(dict.fromkeys(modes))


def run_mode(app: Talksearch, labels: list[LabelledQuery], mode: str, k: int) -> ModeRun:
    """Every query in one mode. A mode that raises (not implemented yet, broken) is reported as
    unavailable rather than ending the comparison of the others."""
    run = ModeRun()
    try:
        app.search(SearchRequest(labels[0].query, k, mode))  # untimed: model loading stays out of the latency
        for label in labels:
            started = time.perf_counter()
            hits = app.search(SearchRequest(label.query, k, mode))
            run.seconds.append(time.perf_counter() - started)
            run.judgements.append(judge(label, hits))
    except Exception as exc:  # noqa: BLE001 - any failure makes just this mode unavailable
        return ModeRun(error=exc)
    return run


def report(labels: list[LabelledQuery], runs: dict[str, ModeRun], k: int) -> dict:
    """Everything ``--json`` prints: counts, metrics per mode and subset, and each query's rank
    per mode (where the ranking work should look)."""
    modes = {}
    for mode, run in runs.items():
        if run.error is not None:
            modes[mode] = {"available": False, "error": f"{type(run.error).__name__}: {run.error}"}
        else:
            modes[mode] = {"available": True, "latency_ms": round(1000 * sum(run.seconds) / len(run.seconds), 1),
                           "metrics": aggregate(labels, run.judgements, k)}
    ok = {mode: run for mode, run in runs.items() if run.error is None}
    per_query = [{"query": label.query, "tags": list(label.tags),
                  "rank": {mode: run.judgements[i].rank for mode, run in ok.items()},
                  "recording_at_1": {mode: run.judgements[i].recording_at_1 for mode, run in ok.items()}}
                 for i, label in enumerate(labels)]
    return {"queries": len(labels), "k": k, "subsets": {name: len(members) for name, members in subsets(labels).items()},
            "modes": modes, "per_query": per_query}


def print_report(result: dict) -> None:
    """Rows: each metric within each subset; columns: the modes. The best mode per row is bold."""
    modes = result["modes"]
    table = Table(title=f"{result['queries']} queries, searched {result['k']} deep")
    for column in ("subset", "n", "metric", *modes):
        table.add_column(column, justify="left" if column in ("subset", "metric") else "right")
    for subset, count in result["subsets"].items():
        for i, metric in enumerate(metric_names(result["k"])):
            values = {m: r["metrics"][subset][metric] for m, r in modes.items() if r["available"]}
            best = max(values.values(), default=None)
            cells = [_cell(values.get(m), bold=len(values) > 1 and values.get(m) == best) for m in modes]
            table.add_row(subset if i == 0 else "", str(count) if i == 0 else "", metric, *cells)
        table.add_section()
    console.print(table)
    for mode, r in modes.items():
        note = f"mean search latency {r['latency_ms']:.1f} ms" if r["available"] else f"unavailable ({r['error']})"
        console.print(f"{mode}: {note}", highlight=False)


def _cell(value: float | None, bold: bool) -> str:
    if value is None:
        return "—"
    return f"[bold]{value:.3f}[/bold]" if bold else f"{value:.3f}"


def warn_missing(app: Talksearch, labels: list[LabelledQuery]) -> None:
    """Labels naming recordings the library lacks would silently score zero: say so."""
    present = {Path(r.source).name for r in app.recordings()}
    missing = sorted({a.source for label in labels for a in label.answers} - present)
    if missing:
        print(f"talksearch: warning: {len(missing)} labelled recording(s) not in {app.settings.library}: "
              f"{', '.join(missing)}; their queries count as misses", file=sys.stderr)


def run_eval(settings: Settings, args: argparse.Namespace) -> int:
    if args.k < 1:
        raise ValueError("--k must be at least 1")
    labels = load_queries(args.queries)
    modes = parse_modes(args.modes)
    app = Talksearch(settings)
    warn_missing(app, labels)
    runs = {mode: run_mode(app, labels, mode, args.k) for mode in modes}
    if all(run.error is not None for run in runs.values()):
        raise next(iter(runs.values())).error  # nothing to compare: the library itself is the problem
    result = report(labels, runs, args.k)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print_report(result)
    return 0
