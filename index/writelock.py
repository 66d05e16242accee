"""One writer at a time per library, across processes.

An OS lock (``flock`` on ``<library>/write.lock``) is held for the length of each write. The kernel
drops it when its holder dies, even by SIGKILL, so a crashed writer never blocks the library.
Writes are short (transcription and embedding happen before the lock is taken; adding a talk
takes well under a second), so a second writer waits its turn and gives up with a clear error
only after ``wait`` seconds (a reindex of a big library can hold the lock for minutes).
Before, a CLI import while the server ran lost the CLI's vectors at the server's next write.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Iterator

from ingest.errors import TalksearchError


class LibraryBusyError(TalksearchError):
    """Another process is writing the library and did not finish in time."""


class WriterLock:
    """Re-entrant within a thread, exclusive across threads and processes."""

    def __init__(self, path: Path, wait: float = 300.0):
        self.path = path
        self.wait = wait
        self._threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def _acquire(self, wait: float) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return True

    @contextlib.contextmanager
    def _held(self, wait: float, required: bool) -> Iterator[bool]:
        with self._threads:
            if self._depth == 0 and not self._acquire(wait):
                if required:
                    raise LibraryBusyError(f"library {self.path.parent} is being written by another process "
                                           f"(pid {self._holder()}); gave up after {wait:.0f} s, try again later")
                yield False
                return
            self._depth += 1
            try:
                yield True
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None

    def held(self) -> contextlib.AbstractContextManager[bool]:
        """Wait for the lock (up to ``wait`` seconds), or raise ``LibraryBusyError``."""
        return self._held(self.wait, required=True)

    def if_free(self) -> contextlib.AbstractContextManager[bool]:
        """Take the lock only if nobody holds it; yields whether it was taken (for tidying that can wait)."""
        return self._held(0.0, required=False)
