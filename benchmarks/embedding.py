"""Embedding backends side by side on the packaged multilingual-e5-small: torch
(sentence-transformers), ONNX Runtime fp32 and ONNX Runtime int8.

    python -m benchmarks.embedding [--json OUT] [--rounds 3]

- cold start: a fresh process imports the query path, loads the model and embeds one query
  (what a CLI search pays), per backend, alternating, median of --rounds;
- warm single-query latency (batch of 1) over 200+ distinct ko/ru/en queries, the backends
  taking turns every 20 queries; passage throughput at the default batch size;
- agreement with torch: cosine of normalised vectors on every text, and whether the labelled
  dev-set queries (tests/eval) find the same nearest passage among the demo talks' sentences and
  the fixtures' subtitle cues, with passages embedded by the same backend or by torch (a
  library indexed before the switch);
- quality of its own: how often an English sentence finds its Korean/Russian rendering first
  among all of them, and the other way round (R@1).

Texts are real: tests/eval queries, the demo talks (api/demo/talks.json), the language-centring
sentences and the shared fixtures' subtitles and transcripts. The machine may be shared: read
the ratios within one run.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import srt

from api.config import Settings
from benchmarks import FIXTURES, ROOT
from index.centering import NEUTRAL
from index.embedder import BACKENDS, Embedder, EmbedderSettings

QUERY_PATH_IMPORTS = {"torch": "sentence_transformers", "onnx": "onnxruntime, tokenizers",
                      "onnx-int8": "onnxruntime, tokenizers"}
BLOCK = 20
COLD = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from index.embedder import Embedder, EmbedderSettings
import {imports}
t1 = time.perf_counter()
embedder = Embedder(EmbedderSettings(cache_dir=Path(sys.argv[2]), backend=sys.argv[1]))
embedder.warm_up()
t2 = time.perf_counter()
embedder.queries(["умные светофоры в Казани"])
t3 = time.perf_counter()
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))  # not inherited, unlike ru_maxrss
print(json.dumps({{"import_s": t1 - t0, "load_s": t2 - t1, "first_query_s": t3 - t2,
                  "peak_rss_mb": int(peak.split()[1]) / 1024, "imports_torch": "torch" in sys.modules}}))
"""


def texts() -> dict[str, list]:
    """queries: short real queries; passages: talk sentences, transcript lines and subtitle cues
    (every other one times the throughput); dev: labelled queries; pairs: (English, Korean or
    Russian) sentences that say the same (demo talks and their translations, subtitle cues with
    the same timing in both languages)."""
    dev = [json.loads(line)["query"] for line in (ROOT / "tests" / "eval" / "dev.jsonl").open(encoding="utf-8")]
    talks = json.loads((ROOT / "api" / "demo" / "talks.json").read_text(encoding="utf-8"))["talks"]
    sentences = [s for talk in talks for s in talk["sentences"] + (talk.get("translation") or [])]
    pairs = [(en, said) for talk in talks if talk.get("translation") for said, en in zip(talk["sentences"], talk["translation"])]
    cues = []
    for folder in sorted(FIXTURES.glob("subtitles/*/*")):
        timed = {lang: {(c.start, c.end): " ".join(c.content.split()) for c in srt.parse((folder / f"{lang}.srt").read_text(encoding="utf-8"))}
                 for lang in ("en", "ko") if (folder / f"{lang}.srt").is_file()}
        cues += [text for by_time in timed.values() for text in by_time.values()]
        if len(timed) == 2:
            pairs += [(en, timed["ko"][t]) for t, en in timed["en"].items() if t in timed["ko"] and len(en) >= 15]
    lines = [line.strip() for path in sorted(FIXTURES.glob("*/*.txt")) for line in path.read_text(encoding="utf-8").splitlines()]
    unique = lambda items: list(dict.fromkeys(t for t in items if t.strip()))  # noqa: E731
    short_cues = [c for c in unique(cues) if 8 <= len(c) <= 60]
    queries = unique(dev + [s for group in NEUTRAL.values() for s in group] + short_cues[::3])[:240]
    passages = unique(sentences + lines + [c for c in unique(cues) if len(c) > 20][::5])
    return {"dev": unique(dev), "queries": queries, "passages": passages, "pairs": list(dict(pairs).items())}


def cold_start(backend: str, cache_dir: Path) -> dict:
    code = COLD.format(imports=QUERY_PATH_IMPORTS[backend])
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, backend, str(cache_dir)], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "process_s": time.perf_counter() - start}


def run(rounds: int) -> dict:
    cache_dir = Settings.from_env().models_dir
    data = texts()
    embedders = {b: Embedder(EmbedderSettings(cache_dir=cache_dir, backend=b)) for b in BACKENDS}
    for embedder in embedders.values():
        embedder.warm_up()  # exports the ONNX graphs on a first run
    results = {b: {} for b in BACKENDS}

    colds = {b: [] for b in BACKENDS}
    for _ in range(rounds):
        for backend in BACKENDS:
            colds[backend].append(cold_start(backend, cache_dir))
    for backend, runs in colds.items():
        for key in runs[0]:
            values = [r[key] for r in runs]
            results[backend][key] = values[0] if isinstance(values[0], bool) else statistics.median(values)

    queries, passages = data["queries"], data["passages"]
    for embedder in embedders.values():
        embedder.queries(queries[:10])
    # Every backend embeds every query, in turns of BLOCK queries: per-query turns would measure
    # each runtime's idle threads spinning against the other's work.
    latencies = {b: [] for b in BACKENDS}
    for start_at in range(0, len(queries), BLOCK):
        for backend, embedder in embedders.items():
            for query in queries[start_at : start_at + BLOCK]:
                start = time.perf_counter()
                embedder.queries([query])
                latencies[backend].append(time.perf_counter() - start)
    throughput = {b: [] for b in BACKENDS}
    for _ in range(rounds):
        for backend, embedder in embedders.items():
            start = time.perf_counter()
            embedder.passages(passages[::2])
            throughput[backend].append(len(passages[::2]) / (time.perf_counter() - start))
    for backend in BACKENDS:
        ms = np.array(latencies[backend]) * 1000
        results[backend].update(query_p50_ms=float(np.percentile(ms, 50)), query_p99_ms=float(np.percentile(ms, 99)),
                                passages_per_s=statistics.median(throughput[backend]))

    everything = list(dict.fromkeys(queries + passages + data["dev"]))
    english, other = [list(side) for side in zip(*data["pairs"])]
    vectors = {b: (e.queries(everything), e.passages(everything), e.queries(data["dev"]), e.passages(passages))
               for b, e in embedders.items()}
    for backend, e in embedders.items():
        hits = [np.argmax(e.queries(a) @ e.passages(b).T, axis=1) == np.arange(len(a)) for a, b in ((english, other), (other, english))]
        results[backend]["parallel_r1"] = float(np.concatenate(hits).mean())
    ref_q, ref_p, ref_dev, ref_pass = vectors["torch"]
    ref_top = np.argsort(-(ref_dev @ ref_pass.T), axis=1)[:, :5]
    for backend, (q, p, dev, pas) in vectors.items():
        cos_q, cos_p = (q * ref_q).sum(axis=1), (p * ref_p).sum(axis=1)
        top = np.argsort(-(dev @ pas.T), axis=1)[:, :5]
        mixed = np.argmax(dev @ ref_pass.T, axis=1)
        results[backend].update(
            cosine_min=float(min(cos_q.min(), cos_p.min())), cosine_mean=float((cos_q.mean() + cos_p.mean()) / 2),
            top1_agreement=float((top[:, 0] == ref_top[:, 0]).mean()),
            top5_overlap=float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top, ref_top)])),
            top1_agreement_torch_index=float((mixed == ref_top[:, 0]).mean()))
    return {"texts": {"queries": len(queries), "passages": len(passages), "agreement": len(everything),
                      "dev_queries": len(data["dev"]), "pairs": len(data["pairs"])},
            "rounds": rounds, "backends": results}


ROWS = [("import_s", "query-path import (s)", "{:.2f}"), ("load_s", "model load (s)", "{:.2f}"),
        ("first_query_s", "first query (s)", "{:.3f}"), ("process_s", "cold process total (s)", "{:.2f}"),
        ("peak_rss_mb", "peak RSS cold (MB)", "{:.0f}"), ("imports_torch", "imports torch", "{}"),
        ("query_p50_ms", "query p50 (ms)", "{:.1f}"), ("query_p99_ms", "query p99 (ms)", "{:.1f}"),
        ("passages_per_s", "passages/s", "{:.0f}"), ("cosine_min", "cosine to torch, min", "{:.4f}"),
        ("cosine_mean", "cosine to torch, mean", "{:.4f}"), ("top1_agreement", "top-1 same as torch", "{:.3f}"),
        ("top5_overlap", "top-5 overlap with torch", "{:.3f}"),
        ("top1_agreement_torch_index", "top-1 same, torch-built index", "{:.3f}"),
        ("parallel_r1", "translation found first (R@1)", "{:.3f}")]


def table(report: dict) -> str:
    backends = report["backends"]
    lines = [f"{'':32}" + "".join(f"{b:>12}" for b in backends)]
    for key, label, fmt in ROWS:
        lines.append(f"{label:32}" + "".join(f"{fmt.format(r[key]):>12}" for r in backends.values()))
    t = report["texts"]
    lines.append(f"({t['queries']} queries, {t['passages']} passages, {t['agreement']} texts compared, "
                 f"{t['dev_queries']} dev queries ranked, {t['pairs']} translation pairs both ways; "
                 f"medians of {report['rounds']} rounds)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.embedding", description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--rounds", type=int, default=3, help="cold starts and throughput passes per backend")
    args = parser.parse_args(argv)
    report = run(args.rounds)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
