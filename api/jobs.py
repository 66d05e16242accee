"""Background ingest jobs: recorded in ``<library>/jobs.sqlite`` so their outcome outlives the
request and the process, and run one at a time so Whisper never competes with itself for the CPU
while searches go on answering.

Several server processes may share one library. Each job row names the process that owns it, and
each process holds an OS lock on its own file in ``jobs.owners/`` while it lives: a starting
server fails only the unfinished jobs whose owner's lock is free (that process died), never
those of a live neighbour. The queue is bounded and finished jobs beyond ``KEEP_FINISHED`` are
pruned, so neither grows without end.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

from core.errors import TalksearchError

from .outcome import Outcome

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
UNFINISHED = (QUEUED, RUNNING)
RESTARTED = "interrupted: the server running it stopped"
SHUT_DOWN = "interrupted by server shutdown"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, progress REAL NOT NULL,
    filename TEXT NOT NULL, error TEXT, recording_id TEXT, note TEXT, files TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, owner TEXT);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
"""
KEEP_FINISHED = 1000
MAX_QUEUED = 100

Work = Callable[[Callable[[float], None]], Outcome]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    kind: str
    state: str
    progress: float
    filename: str
    error: str | None
    recording_id: str | None
    note: str | None
    files: list[str]
    """Files the job staged in the library; whatever no recording keeps is removed when it ends."""
    created_at: str
    updated_at: str


class QueueFullError(TalksearchError):
    """Too many jobs are waiting; the client should try again later."""


class JobStore:
    """Thread-safe job records; the worker writes progress while requests read it."""

    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)
        if "owner" not in {r["name"] for r in self._db.execute("PRAGMA table_info(jobs)")}:  # a store from before owners
            self._db.execute("ALTER TABLE jobs ADD COLUMN owner TEXT")
        self._owners = path.parent / f"{path.stem}.owners"
        self._owners.mkdir(exist_ok=True)
        self.owner = uuid.uuid4().hex
        self._alive = os.open(self._owners / self.owner, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._alive, fcntl.LOCK_EX)  # released by the kernel however this process ends

    def close(self) -> None:
        with self._lock:
            self._db.close()
            (self._owners / self.owner).unlink(missing_ok=True)
            os.close(self._alive)

    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        values = dict(row)
        values.pop("owner")
        return Job(**{**values, "files": json.loads(row["files"])})

    def create(self, kind: str, filename: str, files: list[Path]) -> Job:
        stamp = _now()
        job = Job(uuid.uuid4().hex, kind, QUEUED, 0.0, filename, None, None, None, [str(f) for f in files], stamp, stamp)
        names = [f.name for f in fields(Job)]
        values = {**asdict(job), "files": json.dumps(job.files)}
        with self._lock:
            queued = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ? AND owner = ?", (QUEUED, self.owner)).fetchone()[0]
            if queued >= MAX_QUEUED:
                raise QueueFullError(f"{queued} jobs are already waiting; try again when some have finished")
            self._db.execute(f"INSERT INTO jobs({', '.join(names)}, owner) VALUES ({', '.join('?' * (len(names) + 1))})",
                             [*(values[n] for n in names), self.owner])
            self._db.execute("DELETE FROM jobs WHERE state NOT IN (?, ?) AND rowid NOT IN "
                             "(SELECT rowid FROM jobs WHERE state NOT IN (?, ?) ORDER BY created_at DESC, rowid DESC LIMIT ?)",
                             (*UNFINISHED, *UNFINISHED, KEEP_FINISHED))
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._job(row) if row else None

    def recent(self, limit: int) -> list[Job]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)).fetchall()
        return [self._job(r) for r in rows]

    def update(self, job_id: str, **changes) -> None:
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?", [*changes.values(), _now(), job_id])

    def unfinished(self) -> list[Job]:
        """Every process's queued and running jobs."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY created_at", UNFINISHED).fetchall()
        return [self._job(r) for r in rows]

    def _owner_is_alive(self, owner: str | None) -> bool:
        if owner == self.owner:
            return True
        if owner is None:
            return False
        try:
            fd = os.open(self._owners / owner, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        (self._owners / owner).unlink(missing_ok=True)
        return False

    def fail_unfinished(self, reason: str, orphans: bool = False) -> list[Job]:
        """Mark this process's queued and running jobs failed, or (``orphans``) those of processes
        that have died: no job may look alive once nobody runs it."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE state IN (?, ?) ORDER BY created_at", UNFINISHED).fetchall()
        left = [self._job(r) for r in rows if (not self._owner_is_alive(r["owner"]) if orphans else r["owner"] == self.owner)]
        for job in left:
            self.update(job.id, state=FAILED, error=reason)
        return left


class Interrupted(Exception):
    """Raised from the progress callback to stop transcription when the server shuts down."""


class JobRunner:
    """A single worker thread; ``after`` runs when a job ends, however it ends (to tidy staged files)."""

    def __init__(self, store: JobStore, after: Callable[[Job], None]):
        self.store = store
        self._after = after
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-job")

    def submit(self, kind: str, filename: str, files: list[Path], work: Work) -> Job:
        job = self.store.create(kind, filename, files)
        self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Work) -> None:
        if self._stopping.is_set():
            return
        self.store.update(job.id, state=RUNNING)
        reported = [0.0]

        def progress(fraction: float) -> None:
            if self._stopping.is_set():
                raise Interrupted(SHUT_DOWN)
            fraction = round(min(max(fraction, 0.0), 1.0), 3)
            if fraction - reported[0] >= 0.01:
                reported[0] = fraction
                self.store.update(job.id, progress=fraction)

        try:
            outcome = work(progress)
        except (TalksearchError, Interrupted) as exc:
            self.store.update(job.id, state=FAILED, error=str(exc))
        except Exception as exc:  # a job must end "failed", never stay "running"; details (paths) go to the log only
            log.exception("job %s failed", job.id)
            self.store.update(job.id, state=FAILED, error=f"internal error ({exc.__class__.__name__}); see the server log")
        else:
            recording = outcome.recording
            note = None if outcome.added else f"already in the library as {recording.id} ({recording.title}); nothing added"
            self.store.update(job.id, state=DONE, progress=1.0, recording_id=recording.id, note=note)
        finally:
            self._after(self.store.get(job.id))

    def shutdown(self) -> list[Job]:
        """Stop the running job at its next progress report, drop queued ones; returns what was cut short."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        return self.store.fail_unfinished(SHUT_DOWN)
