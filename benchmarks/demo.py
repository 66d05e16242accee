"""Figures that matter to users, measured side by side in one run (the machine may be shared and
noisy, so compare numbers from the same run only):

- ingest real-time factor (transcribe + translate + index) over the demo talks;
- search latency, warm in-process, per ranking mode, and cold from the command line;
- peak memory.

Run: ``python -m benchmarks.demo [--library DIR] [--repeat 20]``.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from api.config import Settings
from api.demo_library import DEMO_DIR, build_demo, demo_talks
from api.service import Talksearch
from index.library import SEARCH_MODES, SearchRequest

QUERIES = ["5G pilots", "умные светофоры", "주민을 위한 디지털 플랫폼", "smart traffic lights at intersections",
           "protection of personal data", "predicting water pipe failures", '"base stations"', "데이터 공개"]


def _timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", type=Path, help="where to build the benchmark library (default: a temporary folder)")
    parser.add_argument("--repeat", type=int, default=10, help="searches per query and mode")
    args = parser.parse_args(argv)
    folder = args.library or Path(tempfile.mkdtemp(prefix="talksearch-bench-")) / "lib"
    if folder.exists():
        shutil.rmtree(folder)
    settings = Settings.from_env(library=folder)
    app = Talksearch(settings)
    print(f"models: whisper {settings.whisper.model}, embeddings {settings.embedder.model}; library {folder}")
    print(f"model load: {_timed(app.warm_up):.1f} s")

    audio = sum(t["duration_s"] for t in demo_talks() if t["media"] == "audio")
    elapsed = _timed(lambda: build_demo(app))
    print(f"ingest: {audio:.0f} s of audio in {elapsed:.1f} s -> real-time factor {elapsed / audio:.3f} (transcribe + translate + index)")

    for query in QUERIES:  # first searches load the analysers and language means
        app.search(SearchRequest(query))
    print(f"search, warm, {len(QUERIES)} queries x {args.repeat}:")
    for mode in SEARCH_MODES:
        times = [_timed(lambda: app.search(SearchRequest(q, 10, mode))) * 1000 for q in QUERIES for _ in range(args.repeat)]
        times.sort()
        print(f"  {mode:8s} median {statistics.median(times):6.1f} ms   p95 {times[int(0.95 * len(times)) - 1]:6.1f} ms")

    command = [sys.executable, "-m", "api.cli", "search", "smart traffic lights", "--k", "5", "--library", str(folder)]
    cold = sorted(_timed(lambda: subprocess.run(command, capture_output=True, check=True)) for _ in range(3))
    print(f"search from the command line (new process, models loaded each time): median {cold[1]:.1f} s")
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"demo media: {sum(p.stat().st_size for p in DEMO_DIR.glob('*.opus')) / 1024:.0f} KiB")
    if args.library is None:
        shutil.rmtree(folder.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
