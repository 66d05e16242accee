"""Ingest on Ray: wall time for the same N files with 1 and 2 single-CPU workers (and one worker
with 2 CPUs), on one local cluster of 2 CPUs started here, beside the local path (no Ray, two files
at once) in the same run, each as ``talksearch ingest FILES`` runs; then the time projected for
1,000 hours of audio on K machines.

Files: the spoken demo talks (about 40 s each) written to WAV, cycled to ``--files`` with each copy
a hair quieter so no two have the same bytes (same bytes are stored once and cost nothing).
Each configuration ingests into a fresh library; worker start-up (model loading) is timed apart.

Projection: a machine of ``--cores`` CPUs runs one single-CPU worker per core, each as fast as one
of the two workers measured here (per-core throughput, so no gain is assumed from bigger
machines); 1,000 h / (K x cores x audio seconds per worker second). The driver's own ceiling is
printed beside it: how fast it decodes (it hashes, probes and decodes every file) and the audio
it ships (16 kHz float32, 230 MB an hour of audio) over a 1 Gbit/s link.

Run: ``python -m benchmarks.distributed [--files 6] [--cores 16] [--json OUT]``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from api.config import Settings
from api.demo_library import DEMO_DIR, demo_talks
from api.service import Talksearch
from ingest.media import SAMPLE_RATE, AudioSource, load_audio
from ingest.records import Metadata

# (workers, CPUs each) measured on a Ray cluster of 2 CPUs.
LAYOUTS = ((1, 1), (2, 1), (1, 2))
LINK_BYTES_PER_SECOND = 1e9 / 8


def write_files(folder: Path, count: int) -> list[Path]:
    talks = [load_audio(DEMO_DIR / t["file"]) for t in demo_talks() if t["media"] == "audio"]
    paths = []
    for i in range(count):
        samples = talks[i % len(talks)] * (1.0 - 1e-3 * (i // len(talks)))
        path = folder / f"talk{i:03d}.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1), out.setsampwidth(2), out.setframerate(SAMPLE_RATE)
            out.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
        paths.append(path)
    return paths


def local(settings: Settings, files: list[Path]) -> dict:
    """As ``talksearch ingest FILES`` runs without Ray: ``whisper.parallel`` files at once."""
    app = Talksearch(settings)
    started = time.perf_counter()
    app.warm_up()
    return {"layout": f"local, {settings.whisper.parallel} at once", **ingested(app, files, started)}


def on_ray(settings: Settings, files: list[Path], workers: int, cpus: int) -> dict:
    app = Talksearch(settings.changed(ray="local", ray_workers=workers, ray_worker_cpus=cpus))
    started = time.perf_counter()
    app.cluster  # noqa: B018  (joining the cluster starts the workers: their models load here)
    row = {"layout": f"{workers} worker{'s' * (workers > 1)} x {cpus} CPU", "workers": workers, "cpus": cpus,
           **ingested(app, files, started)}
    app.close()
    return row


def ingested(app: Talksearch, files: list[Path], started: float) -> dict:
    """Start-up (from ``started``) and wall time of ingesting ``files`` as the command line does."""
    loaded = time.perf_counter()
    results = list(app.ingest_many([(path, Metadata(), None) for path in files]))
    assert all(getattr(r, "added", False) for r in results), results
    return {"start_s": round(loaded - started, 1), "wall_s": round(time.perf_counter() - loaded, 1)}


def decode_rate(files: list[Path]) -> float:
    """Audio seconds the driver decodes into windows per wall second."""
    started = time.perf_counter()
    seconds = sum(samples.size for path in files for _, samples in AudioSource(path).windows(600)) / SAMPLE_RATE
    return seconds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--cores", type=int, default=16, help="CPUs per machine in the projection")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_files(folder, args.files)
        audio = sum(AudioSource(path).declared for path in files)
        settings = Settings.from_env()
        rows = [local(settings.changed(library=folder / "local"), files)]
        decoded = decode_rate(files)
        ray.init(num_cpus=2, logging_level="WARNING")
        try:
            for workers, cpus in LAYOUTS:
                rows.append(on_ray(settings.changed(library=folder / f"ray{workers}x{cpus}"), files, workers, cpus))
                print(rows[-1], flush=True)
        finally:
            ray.shutdown()
    for row in rows:
        row["rtf"] = round(row["wall_s"] / audio, 3)
    two = next(r for r in rows if r.get("workers") == 2 and r["cpus"] == 1)
    per_worker = audio / two["wall_s"] / 2  # audio seconds per second, per single-CPU worker
    driver_ceiling = min(decoded, LINK_BYTES_PER_SECOND / (4 * SAMPLE_RATE))
    projection = []
    for machines in (1, 4, 16, 64):
        hours = 1000 / (machines * args.cores * per_worker)
        projection.append({"machines": machines, "cores": args.cores, "hours": round(hours, 1),
                           "driver_bound": 1000 / driver_ceiling > hours})
    print(f"{len(files)} files, {audio:.0f} s of audio; machine: 2 cores")
    print(f"{'layout':<20}{'start s':>9}{'wall s':>9}{'RTF':>8}")
    for row in rows:
        print(f"{row['layout']:<20}{row['start_s']:>9}{row['wall_s']:>9}{row['rtf']:>8}")
    print(f"driver: decodes {decoded:.0f} s of audio a second; a 1 Gbit/s link carries "
          f"{LINK_BYTES_PER_SECOND / (4 * SAMPLE_RATE):.0f}; so at most {1000 / driver_ceiling:.1f} h for 1,000 h")
    for p in projection:
        print(f"1,000 h on {p['machines']} x {p['cores']} cores: {p['hours']} h"
              + (f"  (the driver's ceiling makes it {1000 / driver_ceiling:.1f} h)" if p["driver_bound"] else ""))
    if args.json:
        args.json.write_text(json.dumps({"files": len(files), "audio_s": round(audio, 1), "rows": rows,
                                         "driver_decode_x": round(decoded), "projection": projection}, indent=1))


if __name__ == "__main__":
    main()
