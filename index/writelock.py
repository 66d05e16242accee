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

from core.errors import TalksearchError


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

    def _acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LibraryBusyError(f"library {self.path.parent} is being written by another process "
                                           f"(pid {self._holder()}); gave up after {self.wait:.0f} s, try again later")
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Wait for the lock (up to ``wait`` seconds), or raise ``LibraryBusyError``."""
        with self._threads:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None
