"""Ingest on a Ray cluster: ``talksearch ingest PATHS --ray auto|local|ADDRESS``, and the HTTP
server's uploads with ``TALKSEARCH_RAY`` set. Nothing else imports this module, so Ray is loaded
only when it is asked for.

The ingesting process (the CLI, or the server's job thread) is the driver and the library's one
writer. ``Worker`` actors on the cluster each load whisper and the embedding model once and turn
windows of audio into timed text (``Transcriber.window``), and a finished transcript into
embedded chunks (``Talksearch.prepare``). The driver reads each file as a local ingest does
(content hash first, then ``window_minutes`` windows cut in a pause) and sends the samples through
Ray's object store, so workers need the project installed but not the files; the windows of a long
file are transcribed on several workers at once. Results are stored one file at a time, in the
order given, by ``Talksearch.add_transcribed``: the same dedupe, writer lock and model checks as a
local ingest. Decoding stays in the driver, with at most two windows per worker decoded ahead.

A worker that dies is restarted by Ray (``RESTARTS`` times, loading its models again) and what it
was running or had queued runs again on it; a worker that dies for good fails the files it held,
with a one-line error each, and ingest goes on with the others. A file that cannot be read fails
alone, as it does locally.

Unlike a local ingest, a window after the first is not told the language heard in the first:
each detects its own (so a long talk that switches language for good is heard right sooner); the
recording's language is still that of its first window with speech.

Measured (``python -m benchmarks.distributed``: 6 demo talks, 242 s of speech, a local cluster of
2 CPUs on the 2-core machine, quiet): one single-CPU worker 28.8 s, two 19.4 s (x1.49), one worker
with both CPUs 28.1 s, so a worker takes one CPU by default; the driver decodes ~4,100 s of audio a
second, far ahead of the workers. One process without Ray, two files at once, took 17.9 s: on one
machine Ray gains nothing; it is for spreading files over several.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import ray
from ray.util.queue import Queue

from core.errors import NoSpeechError, TalksearchError
from ingest.diarize import Diarization
from ingest.records import Metadata
from ingest.transcribe import Heard, assemble

from .config import Settings
from .outcome import Outcome, Prepared, recording_id

if TYPE_CHECKING:  # the driver hands its service's class to the workers, so this module never imports it
    from .service import Talksearch

log = logging.getLogger(__name__)

# Times Ray restarts a worker that died (each restart loads the models again, ~5 s).
RESTARTS = 3
# Windows waiting on a worker besides the one it transcribes, so it never waits for the driver.
AHEAD = 1
# Seconds between a worker's progress reports, and the driver's longest wait between looks.
REPORT_SECONDS = 0.5


class ClusterError(TalksearchError):
    """The Ray cluster cannot be joined, or no worker is left on it."""


@ray.remote
class Worker:
    """Loads the models once; Ray restarts it (and reruns its tasks) if its process dies."""

    def __init__(self, service: type[Talksearch], settings: Settings):
        # One part of a window at a time, on the CPUs Ray gave this worker: parts run as workers.
        self.service = service(settings.changed(ray=None, whisper_parallel=1, whisper_threads=settings.ray.worker_cpus))
        self.service.warm_up()

    def ready(self) -> tuple[str, int]:
        """(node id, process id): where this worker runs."""
        return ray.get_runtime_context().get_node_id(), os.getpid()

    def transcribe(self, board: ray.actor.ActorHandle, key: tuple[int, int], samples: np.ndarray, offset: float,
                   language: str | None, translate: bool, hotwords: str | None = None) -> Heard:
        """One window; the seconds of it done go to the driver's ``board`` as ``(key, seconds)``, unawaited.
        (The board comes with each call: an actor handle among a restartable actor's own arguments is
        kept by nobody for its restart, ray-project/ray#53727.)"""
        last = [0.0]

        def report(seconds: float) -> None:
            if time.monotonic() - last[0] >= REPORT_SECONDS:
                last[0] = time.monotonic()
                board.put_nowait.remote((key, seconds))

        return self.service.transcriber.window(samples, offset, language, language is not None, translate, report, hotwords)

    def prepare(self, transcript, recording: str) -> Prepared:
        return self.service.prepare(transcript, recording)


@dataclass
class _File:
    """One file on its way through the cluster; ``result`` is set when it can be written."""

    index: int
    path: Path
    meta: Metadata
    name: str | None
    hotwords: str | None = None
    digest: str = ""
    windows: Iterator[tuple[float, np.ndarray]] | None = None  # still being sent while not None
    expected: float = 0.0
    sent: int = 0
    heard: dict[int, Heard] = field(default_factory=dict)
    done: dict[int, float] = field(default_factory=dict)  # seconds transcribed of each window sent
    result: Outcome | Prepared | TalksearchError | None = None
    diarization: Diarization | None = None


class Cluster:
    """The driver: joins the cluster named by ``settings.ray.address`` and starts the workers."""

    def __init__(self, service: Talksearch):
        self.service = service
        settings = service.settings
        self._joined = not ray.is_initialized()
        if self._joined:
            try:
                ray.init(address=settings.ray.address, logging_level=logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ClusterError(f"cannot join the Ray cluster {settings.ray.address!r}: {_line(exc)}") from exc
        count = settings.ray.workers or max(1, int(ray.cluster_resources().get("CPU", 1) // settings.ray.worker_cpus))
        self.board = Queue(actor_options={"num_cpus": 0})
        self.workers = [Worker.options(num_cpus=settings.ray.worker_cpus, max_restarts=RESTARTS, max_task_retries=-1)
                        .remote(type(service), settings) for _ in range(count)]
        try:
            self.places = ray.get([w.ready.remote() for w in self.workers])
        except ray.exceptions.RayActorError as exc:
            self.close()
            raise ClusterError(f"Ray workers could not start: {_line(exc)}") from exc

    def describe(self) -> str:
        nodes = len({node for node, _ in self.places})
        return f"{len(self.workers)} Ray workers on {nodes} node{'s' * (nodes > 1)}"

    def close(self) -> None:
        for actor in [*self.workers, self.board.actor]:
            ray.kill(actor)
        if self._joined:
            ray.shutdown()

    def ingest_one(self, path: Path, meta: Metadata, name: str | None,
                   progress: Callable[[float], None] | None = None, hotwords: str | None = None) -> Outcome:
        """One file, as ``Talksearch.ingest`` does it (its windows spread over the workers)."""
        result = next(self.ingest([(path, meta, name)], progress and (lambda index, fraction: progress(fraction)), hotwords))
        if isinstance(result, TalksearchError):
            raise result
        return result

    def ingest(self, items: list[tuple[Path, Metadata, str | None]],
               progress: Callable[[int, float], None] | None = None,
               hotwords: str | None = None) -> Iterator[Outcome | TalksearchError]:
        """(path, metadata, client's name) in, each file's outcome or error out, in the same order
        as each is stored. ``progress(index, fraction)`` follows each file's transcription;
        ``hotwords`` are these files' own, beside the settings' glossary."""
        files = [_File(i, path, meta, name, hotwords) for i, (path, meta, name) in enumerate(items)]
        waiting = iter(files)
        feeding: _File | None = None
        running: dict[ray.ObjectRef, tuple[_File, int | None, ray.actor.ActorHandle]] = {}
        load = {worker: 0 for worker in self.workers}
        written = 0

        def submit(f: _File, window: int | None, call) -> None:
            worker = min(load, key=load.get)
            load[worker] += 1
            running[call(worker)] = (f, window, worker)

        def prepare_when_heard(f: _File) -> None:
            if f.windows is not None or f.result is not None or len(f.heard) < f.sent:
                return
            try:
                transcript = assemble([f.heard[i] for i in range(f.sent)])
                # here, on the whole file: speakers are told apart across the workers' windows
                f.diarization = self.service.diarize(self.service.source(f.path), transcript)
            except NoSpeechError as exc:
                f.result = NoSpeechError(f"{f.path}: {exc}")
                return
            except TalksearchError as exc:
                f.result = exc
                return
            f.heard.clear()
            submit(f, None, lambda worker: worker.prepare.remote(transcript, recording_id(f.digest)))

        try:
            while written < len(files):
                while written < len(files) and files[written].result is not None:
                    yield self._write(files[written])
                    written += 1
                while load and min(load.values()) <= AHEAD:  # a worker has room: decode the next window
                    if feeding is None:
                        feeding = next(waiting, None)
                        if feeding is None:
                            break
                        self._open(feeding)
                    try:
                        window = next(feeding.windows, None) if feeding.result is None else None
                    except TalksearchError as exc:  # the file turned out unreadable part-way
                        feeding.result, window = exc, None
                    if window is None:
                        feeding.windows = None
                        prepare_when_heard(feeding)
                        feeding = None
                        continue
                    f, index = feeding, feeding.sent
                    offset, samples = window
                    f.sent += 1
                    f.done[index] = 0.0
                    submit(f, index, lambda worker: worker.transcribe.remote(
                        self.board.actor, (f.index, index), samples, offset, f.meta.language, self.service.settings.ingest.translate,
                        f.hotwords))
                if not running:
                    continue
                finished, _ = ray.wait(list(running), num_returns=1, timeout=REPORT_SECONDS)
                for ref in finished:
                    f, window, worker = running.pop(ref)
                    load[worker] -= 1
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        del load[worker]
                        log.warning("a Ray worker died for good: %s", _line(exc))
                        if not load:
                            raise ClusterError(f"every Ray worker died (the last on {f.path}); see the Ray logs") from exc
                        f.result = f.result or ClusterError(f"{f.path}: its Ray worker died {RESTARTS + 1} times")
                        continue
                    except ray.exceptions.RayTaskError as exc:
                        if not isinstance(exc.cause, TalksearchError):
                            raise
                        f.result = f.result or exc.cause
                        continue
                    if f.result is not None:  # failed meanwhile: what its other windows give is dropped
                        continue
                    if window is None:
                        f.result = value
                    else:
                        f.heard[window], f.done[window] = value, value.length
                        prepare_when_heard(f)
                self._report(files, progress)
        finally:
            for ref in running:  # an abandoned ingest (an error, a shutdown) leaves no queued work
                ray.cancel(ref)

    def _open(self, f: _File) -> None:
        """Hash and probe a file as a local ingest does; a known or unreadable one is settled here."""
        try:
            f.digest, existing = self.service.known(f.path)
            if existing is not None:
                f.result = Outcome(existing, added=False)
                return
            audio = self.service.source(f.path)
        except TalksearchError as exc:
            f.result = exc
            return
        f.expected = audio.declared or 0.0
        f.windows = audio.windows(self.service.settings.whisper.window_minutes * 60)

    def _write(self, f: _File) -> Outcome | TalksearchError:
        """Store a finished file: the only place the library is written."""
        if not isinstance(f.result, Prepared):
            return f.result
        try:
            return self.service.add_transcribed(f.digest, f.path, f.name, f.meta, f.result, f.diarization)
        except TalksearchError as exc:
            return exc

    def _report(self, files: list[_File], progress: Callable[[int, float], None] | None) -> None:
        """Pass the workers' progress reports on, as each file's share of its seconds transcribed."""
        for (index, window), seconds in self.board.get_nowait_batch(self.board.qsize()):
            files[index].done[window] = max(files[index].done[window], seconds)
        for f in files:
            if progress and f.expected and f.done and f.result is None:
                progress(f.index, min(1.0, sum(f.done.values()) / f.expected))


def _line(exc: BaseException) -> str:
    """The last line of an error Ray wraps in its traceback: the error itself."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else exc.__class__.__name__
