"""Search quality on PostgreSQL matches the embedded store's: the demo library (real models) is
migrated into the server and the labelled queries of tests/eval that ask about it are run on
both, in every ranking mode. Prints the figures and each store's search latency (``-s``)."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from evaluation.metrics import aggregate, judge, load_queries
from index.library import SEARCH_MODES, Library
from index.pgstore import migrate
from tests.helpers import ROOT

METRICS = ("R@1", "R@5", "MRR@10")
K = 10


def evaluate(library: Library, labels) -> dict[str, tuple[dict[str, float], float]]:
    """Per mode: the metrics over all labels, and the median search latency in ms."""
    results = {}
    for mode in SEARCH_MODES:
        library.search(labels[0].query, K, mode=mode)  # untimed: first-use costs stay out
        judgements, seconds = [], []
        for label in labels:
            started = time.perf_counter()
            hits = library.search(label.query, K, mode=mode)
            seconds.append(time.perf_counter() - started)
            judgements.append(judge(label, hits))
        results[mode] = (aggregate(labels, judgements, K)["all"], 1000 * statistics.median(seconds))
    return results


def test_the_evaluation_set_scores_the_same_on_postgresql(demo_app, new_database):
    present = {Path(r.source).name for r in demo_app.recordings()}
    labels = [label for label in load_queries(ROOT / "tests" / "eval" / "dev.jsonl")
              if any(answer.source in present for answer in label.answers)]
    assert len(labels) >= 30
    uri = new_database("demo")
    migrate(demo_app.library.location, uri)
    embedded = demo_app.library
    server = Library(uri, embedded.embedder, fusion=embedded.fusion)
    on_folder, on_server = evaluate(embedded, labels), evaluate(server, labels)
    print(f"\n{len(labels)} queries over the demo library, {K} deep")
    for mode in SEARCH_MODES:
        (folder_metrics, folder_ms), (server_metrics, server_ms) = on_folder[mode], on_server[mode]
        print(f"{mode:8s} " + "  ".join(f"{m} {folder_metrics[m]:.3f} / {server_metrics[m]:.3f}" for m in METRICS)
              + f"  p50 {folder_ms:.1f} / {server_ms:.1f} ms  (embedded / PostgreSQL)")
    for mode in SEARCH_MODES:
        for metric in METRICS:
            assert on_server[mode][0][metric] == pytest.approx(on_folder[mode][0][metric], abs=0.02), (mode, metric)
