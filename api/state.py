"""What the endpoints share: the settings, the service with its loaded models, the job queue."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from fastapi import HTTPException, Request

from ingest.records import Recording

from .config import Settings
from .jobs import RESTARTED, Job, JobRunner, JobStore
from .service import Talksearch

log = logging.getLogger(__name__)

# An upload's staged file unchanged this long belongs to a process that died (a live one writes every second).
STALE_UPLOAD_SECONDS = 600.0


class Backend:
    """Settings, the service with its loaded models, and the job queue of one library."""

    def __init__(self, settings: Settings, service: Talksearch):
        self.settings = settings
        self.service = service
        self.media_dir = service.media_dir
        self.jobs: JobStore | None = None
        self.runner: JobRunner | None = None

    def start(self) -> None:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.jobs = JobStore(self.service.settings.library / "jobs.sqlite")
        for job in self.jobs.fail_unfinished(RESTARTED, orphans=True):  # only those of processes that died
            self.tidy(job)
        for partial in self.media_dir.glob(".incoming-*"):  # uploads a crash cut off (a live one writes every second)
            if time.time() - partial.stat().st_mtime > STALE_UPLOAD_SECONDS:
                partial.unlink(missing_ok=True)
        self.runner = JobRunner(self.jobs, self.tidy)
        if self.settings.http.api_key is None:
            log.warning("no TALKSEARCH_API_KEY set: upload, import and delete are open to clients on this machine only")
        # Whisper and the voice encoder load with the first upload's job (a second or two of a job
        # that takes minutes) and are not held by a server that only searches; what searches need
        # loads now, and opens the library here, before request and job threads could race to open it.
        self.service.warm_up(ingest=False, search=True)
        # Segments due to merge, or a search graph that is missing (a library that crossed the size
        # threshold in a process that saved none): brought up to date off the request path, as
        # after a write; until then searches scan exactly.
        threading.Thread(target=self.maintain, name="talksearch-maintain", daemon=True).start()

    def maintain(self) -> None:
        try:
            self.service.maintain()
        except Exception as exc:  # noqa: BLE001 - a background chore: searches go on without it, the next write retries
            log.warning("library maintenance skipped: %s", exc)

    def stop(self) -> None:
        for job in self.runner.shutdown():
            self.tidy(job)
        self.jobs.close()
        self.service.close()

    def tidy(self, job: Job) -> None:
        """Remove files a finished job staged that no recording uses and no waiting job needs."""
        kept = {str(path) for r in self.service.recordings() if (path := self.service.media_path(r)) is not None}
        waiting = {name for other in self.jobs.unfinished() if other.id != job.id for name in other.files}
        for name in set(job.files) - kept - waiting:
            Path(name).unlink(missing_ok=True)

    def recording(self, ref: str) -> Recording:
        """By id, unique id prefix or title, as the CLI finds it (404 for none)."""
        return self.service.resolve(ref)

    def media(self, recording: Recording) -> Path:
        path = self.service.media_path(recording)
        if path is None:
            why = "it was imported from a transcript alone" if not recording.has_media else "its media file is gone"
            raise HTTPException(404, f"recording {recording.id} has no media to play: {why}")
        return path


def backend(request: Request) -> Backend:
    return request.app.state.backend
