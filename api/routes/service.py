"""The page, and how the server is doing."""
from __future__ import annotations

from pathlib import Path

from fastapi import Depends, Request
from fastapi.responses import FileResponse

from ..access import reader
from ..schemas import Health, Stats
from ..state import Backend, backend
from .common import AUTH, new_router

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

router = new_router()


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/health", response_model=Health, tags=["service"])
def health(request: Request, b: Backend = Depends(backend)) -> dict:
    writes = "loopback-only" if b.settings.http.api_key is None else "api-key"
    # The version read once when the app was made: reading the package metadata took ~0.5 ms a check.
    return {"status": "ok", "version": request.app.version, "writes": writes}


@router.get("/stats", response_model=Stats, tags=["service"], dependencies=[Depends(reader)], responses=AUTH)
def stats(b: Backend = Depends(backend)) -> dict:
    counts = b.service.stats()
    return {"recordings": counts["recordings"], "chunks": counts["chunks"], "hours": round(counts["seconds"] / 3600, 3),
            "whisper_model": b.settings.whisper.model, "embedding_model": b.settings.embedder.model,
            "jobs_waiting": len(b.jobs.unfinished())}
