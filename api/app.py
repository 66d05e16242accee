"""The HTTP API and the web page.

``create_app`` is cheap: models load once, in the startup of the app's lifespan, and stay loaded.
``uvicorn api.app:app`` gets an app configured from TALKSEARCH_* variables.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import mimetypes
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path as PathParam, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from ingest.errors import ModelError, TalksearchError
from ingest.media import MEDIA_SUFFIXES, encode_clip
from ingest.records import Recording
from ingest.subtitles import FORMATS

from .config import Settings
from .jobs import RESTARTED, Job, JobRunner, JobStore
from .schemas import (Deleted, Health, JobInfo, Problem, RecordingDetail, RecordingInfo, RecordingMetadata, SearchHit,
                      SearchQuery, Stats)
from .service import Talksearch
from .uploads import Intake, check_audio, check_transcript, form_body, form_metadata

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
KEY_COOKIE = "talksearch_key"
"""Read endpoints also take the key from this cookie, so <audio> elements can fetch protected media."""
MAX_CLIP_SECONDS = 600.0
CLIP_TYPES = {"ogg": "audio/ogg", "mp3": "audio/mpeg", "wav": "audio/wav"}
TRANSCRIPT_TYPES = {"json": "application/json", "srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}
TRANSCRIPT_SUFFIXES = frozenset(f".{fmt}" for fmt in FORMATS)
SUBTITLE_SUFFIXES = frozenset({".srt", ".vtt"})
# Browsers play Ogg/Opus when it is called audio/ogg; "audio/opus" is not always recognised.
_MEDIA_TYPES = {".opus": "audio/ogg", ".oga": "audio/ogg", ".m4a": "audio/mp4", ".wav": "audio/wav"}
AUTH = {401: {"model": Problem}, 403: {"model": Problem}}
UNKNOWN = {**AUTH, 404: {"model": Problem}}
REFUSED = {**AUTH, 413: {"model": Problem}, 415: {"model": Problem}}


# -- what the endpoints share ---------------------------------------------------------------------
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
        self.jobs = JobStore(self.service.library.folder / "jobs.sqlite")
        for job in self.jobs.fail_unfinished(RESTARTED):
            self.tidy(job)
        self.runner = JobRunner(self.jobs, self.tidy)
        if self.settings.api_key is None:
            log.warning("no TALKSEARCH_API_KEY set: upload, import and delete are open to clients on this machine only")
        self.service.warm_up()
        self.service.stats()  # opens the library here, before request and job threads could race to open it

    def stop(self) -> None:
        for job in self.runner.shutdown():
            self.tidy(job)
        self.jobs.close()

    def tidy(self, job: Job) -> None:
        """Remove files a finished job staged that no recording uses and no waiting job needs."""
        kept = {r.source for r in self.service.recordings()}
        waiting = {name for other in self.jobs.unfinished() if other.id != job.id for name in other.files}
        for name in set(job.files) - kept - waiting:
            Path(name).unlink(missing_ok=True)

    def recording(self, recording_id: str) -> Recording:
        recording = self.service.by_id(recording_id)
        if recording is None:
            raise HTTPException(404, f"no recording {recording_id!r}")
        return recording

    def media(self, recording: Recording) -> Path:
        path = self.service.media_path(recording)
        if path is None:
            why = "it was imported from a transcript alone" if not recording.has_media else "its media file is gone"
            raise HTTPException(404, f"recording {recording.id} has no media to play: {why}")
        return path


def backend(request: Request) -> Backend:
    return request.app.state.backend


# -- who may do what -------------------------------------------------------------------------------
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's TALKSEARCH_API_KEY")
_bearer = HTTPBearer(auto_error=False, description="the server's TALKSEARCH_API_KEY as a bearer token")


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or "localhost"."""
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_key(request: Request, presented: str | None, action: str) -> None:
    expected = request.app.state.backend.settings.api_key
    if expected is None:
        if not is_loopback(request.client.host if request.client else None):
            raise HTTPException(403, f"no API key is configured on this server, so only clients on the same machine may {action}")
        return
    if not presented:
        raise HTTPException(401, f"an API key is needed to {action}: send it as X-API-Key or Authorization: Bearer",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise HTTPException(403, "wrong API key")


def writer(request: Request, key: Annotated[str | None, Security(_key_header)] = None,
           bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None) -> None:
    """Upload, import and delete always need the key (or a loopback client when none is set)."""
    _check_key(request, key or (bearer.credentials if bearer else None), "change the library")


def reader(request: Request, key: Annotated[str | None, Security(_key_header)] = None,
           bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None) -> None:
    """Reads are open unless the server is configured to protect them."""
    if request.app.state.backend.settings.protect_reads:
        _check_key(request, key or (bearer.credentials if bearer else None) or request.cookies.get(KEY_COOKIE), "read")


# -- JSON shapes -----------------------------------------------------------------------------------
def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _recording_info(request: Request, recording: Recording) -> dict:
    media = f"{_root(request)}/recordings/{recording.id}/media" if recording.has_media else None
    return {**asdict(recording), "media_url": media}


def _job_info(job: Job) -> dict:
    return {k: v for k, v in asdict(job).items() if k != "files"}


def _accepted(request: Request, response: Response, job: Job) -> dict:
    response.headers["Location"] = f"{_root(request)}/jobs/{job.id}"
    return _job_info(job)


# -- routes ----------------------------------------------------------------------------------------
router = APIRouter(responses={400: {"model": Problem}, 422: {"model": Problem}})
Id = Annotated[str, PathParam(description="recording id (see GET /recordings); never a path")]


@router.get("/health", response_model=Health, tags=["service"])
def health(b: Backend = Depends(backend)) -> dict:
    writes = "loopback-only" if b.settings.api_key is None else "api-key"
    return {"status": "ok", "version": version("talksearch"), "writes": writes}


@router.get("/stats", response_model=Stats, tags=["service"], dependencies=[Depends(reader)], responses=AUTH)
def stats(b: Backend = Depends(backend)) -> dict:
    counts = b.service.stats()
    return {"recordings": counts["recordings"], "chunks": counts["chunks"], "hours": round(counts["seconds"] / 3600, 3),
            "whisper_model": b.settings.whisper_model, "embedding_model": b.settings.embed_model,
            "jobs_waiting": len(b.jobs.unfinished())}


def _search(request: Request, b: Backend, query: SearchQuery) -> list[dict]:
    chosen = [b.recording(r).id for r in query.recording] if query.recording else None
    if b.service.is_empty():
        return []
    hits = b.service.search(query.q, query.k, query.lang, chosen, mode=query.mode, event=query.event,
                            session=query.session, speaker=query.speaker,
                            date_from=query.date_from and query.date_from.isoformat(),
                            date_to=query.date_to and query.date_to.isoformat())
    playable = {rid: b.service.by_id(rid) for rid in {h.recording_id for h in hits}}
    out = []
    for hit in hits:
        base = f"{_root(request)}/recordings/{hit.recording_id}"
        has_media = playable[hit.recording_id] is not None and playable[hit.recording_id].has_media
        out.append({**asdict(hit),
                    "clip_url": f"{base}/clip?start={hit.start:g}&end={hit.end:g}&format=ogg" if has_media else None,
                    "media_url": f"{base}/media#t={hit.start:g},{hit.end:g}" if has_media else None})
    return out


@router.get("/search", response_model=list[SearchHit], tags=["search"], dependencies=[Depends(reader)], responses=UNKNOWN)
def search(request: Request, query: Annotated[SearchQuery, Query()], b: Backend = Depends(backend)) -> list[dict]:
    """Search what was said, in any language; a query in double quotes finds that exact phrase.
    ``from``/``to`` keep recordings dated within those days."""
    return _search(request, b, query)


@router.post("/search", response_model=list[SearchHit], tags=["search"], dependencies=[Depends(reader)], responses=UNKNOWN)
def search_body(request: Request, query: SearchQuery, b: Backend = Depends(backend)) -> list[dict]:
    return _search(request, b, query)


@router.get("/recordings", response_model=list[RecordingInfo], tags=["recordings"], dependencies=[Depends(reader)],
            responses=AUTH)
def recordings(request: Request, b: Backend = Depends(backend)) -> list[dict]:
    return [_recording_info(request, r) for r in b.service.recordings()]


@router.get("/recordings/{recording_id}", response_model=RecordingDetail, tags=["recordings"],
            dependencies=[Depends(reader)], responses=UNKNOWN)
def recording(request: Request, recording_id: Id, b: Backend = Depends(backend)) -> dict:
    found, transcript = b.service.recording(b.recording(recording_id).id)
    segments = [{"start": s.start, "end": s.end, "language": s.language, "text": s.text, "translation": s.translation}
                for s in transcript.segments]
    return {**_recording_info(request, found), "segments": segments}


@router.get("/recordings/{recording_id}/transcript", tags=["recordings"], dependencies=[Depends(reader)],
            response_class=Response, responses={**UNKNOWN, 200: {"description": "the transcript file", "content": {
                media_type.split(";")[0]: {"schema": {"type": "string"}} for media_type in TRANSCRIPT_TYPES.values()}}})
def transcript(recording_id: Id, fmt: Annotated[Literal[FORMATS], Query(alias="format")] = "json",
               b: Backend = Depends(backend)) -> Response:
    found = b.recording(recording_id)
    return Response(b.service.export(found.id, fmt), media_type=TRANSCRIPT_TYPES[fmt],
                    headers={"Content-Disposition": f'inline; filename="{found.id}.{fmt}"'})


@router.get("/recordings/{recording_id}/clip", tags=["playback"], dependencies=[Depends(reader)], response_class=Response,
            responses={**UNKNOWN, 200: {"description": "exactly the span asked for, re-encoded", "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in CLIP_TYPES.values()}}})
def clip(recording_id: Id, start: Annotated[float, Query(ge=0)], end: Annotated[float, Query(gt=0)],
         fmt: Annotated[Literal[tuple(CLIP_TYPES)], Query(alias="format")] = "ogg",
         margin: Annotated[float, Query(ge=0, le=5, description="seconds added on both sides")] = 0.0,
         b: Backend = Depends(backend)) -> Response:
    """Seconds ``start`` to ``end`` of a recording's audio, cut sample-accurately."""
    found = b.recording(recording_id)
    path = b.media(found)
    if end <= start:
        raise HTTPException(400, f"end ({end}) must be after start ({start})")
    if start >= found.duration:
        raise HTTPException(400, f"start ({start}) is past the end of the recording ({found.duration:.2f} s)")
    if end - start > MAX_CLIP_SECONDS:
        raise HTTPException(400, f"a clip may be at most {MAX_CLIP_SECONDS:.0f} s long; use the media endpoint for more")
    first, last = max(0.0, start - margin), min(found.duration, end + margin)
    return Response(encode_clip(path, first, last, fmt), media_type=CLIP_TYPES[fmt], headers={
        "Content-Disposition": f'inline; filename="{found.id}-{first:.2f}-{last:.2f}.{fmt}"',
        "X-Clip-Start": f"{first:.3f}", "X-Clip-End": f"{last:.3f}"})


@router.get("/recordings/{recording_id}/media", tags=["playback"], dependencies=[Depends(reader)],
            response_class=FileResponse, responses={**UNKNOWN, 206: {"description": "the byte range asked for"}, 200: {
                "description": "the original file", "content": {"audio/*": {"schema": {"type": "string", "format": "binary"}}}}})
def media(recording_id: Id, b: Backend = Depends(backend)) -> FileResponse:
    """The original upload, with HTTP Range support so a player can seek."""
    found = b.recording(recording_id)
    path = b.media(found)
    media_type = _MEDIA_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, filename=f"{found.id}{path.suffix.lower()}",
                        content_disposition_type="inline")


@router.patch("/recordings/{recording_id}", response_model=RecordingInfo, tags=["recordings"], dependencies=[Depends(writer)],
              responses=UNKNOWN)
def edit(request: Request, recording_id: Id, changes: RecordingMetadata, b: Backend = Depends(backend)) -> dict:
    """Correct what is known about a recording; fields left out stay as they are."""
    return _recording_info(request, b.service.edit(b.recording(recording_id).id, **changes.given()))


@router.delete("/recordings/{recording_id}", response_model=Deleted, tags=["recordings"], dependencies=[Depends(writer)],
               responses=UNKNOWN)
def delete(recording_id: Id, b: Backend = Depends(backend)) -> dict:
    gone = b.service.delete(b.recording(recording_id).id)
    return {"id": gone.id, "title": gone.title, "deleted": True}


@router.post("/recordings", status_code=202, response_model=JobInfo, tags=["recordings"], dependencies=[Depends(writer)],
             responses=REFUSED,
             openapi_extra=form_body({"file": True}, "a recording (audio or video ffmpeg decodes) and what is known about it"))
async def upload(request: Request, response: Response, b: Backend = Depends(backend)) -> dict:
    """Start transcribing an upload in the background; poll ``GET /jobs/{id}``."""
    intake = await Intake(b.media_dir, {"file": MEDIA_SUFFIXES}, b.settings.max_upload_mb).read(request)
    try:
        file = intake.required("file")
        meta = form_metadata(intake.fields)
        await run_in_threadpool(check_audio, file.path, file.filename)
    except BaseException:
        intake.discard()
        raise
    job = b.runner.submit("upload", file.filename, [file.path],
                          lambda progress: b.service.ingest(file.path, meta, progress))
    return _accepted(request, response, job)


@router.post("/recordings/import", status_code=202, response_model=JobInfo, tags=["recordings"],
             dependencies=[Depends(writer)], responses=REFUSED,
             openapi_extra=form_body({"transcript": True, "translation": False, "media": False},
                                      "an SRT/VTT/JSON transcript, optionally its English subtitles and its media"))
async def import_transcript(request: Request, response: Response, b: Backend = Depends(backend)) -> dict:
    """Add a recording from an existing transcript (no speech recognition) in the background."""
    accept = {"transcript": TRANSCRIPT_SUFFIXES, "translation": SUBTITLE_SUFFIXES, "media": MEDIA_SUFFIXES}
    intake = await Intake(b.media_dir, accept, b.settings.max_upload_mb).read(request)
    try:
        text, english, media_file = intake.required("transcript"), intake.files.get("translation"), intake.files.get("media")
        meta = form_metadata(intake.fields)
        await run_in_threadpool(check_transcript, text, english, meta.language)
        if media_file is not None:
            await run_in_threadpool(check_audio, media_file.path, media_file.filename)
    except BaseException:
        intake.discard()
        raise
    job = b.runner.submit("import", text.filename, [s.path for s in intake.files.values()],
                          lambda progress: b.service.import_transcript(
                              text.path, media_file and media_file.path, meta, english and english.path))
    return _accepted(request, response, job)


@router.get("/jobs", response_model=list[JobInfo], tags=["jobs"], dependencies=[Depends(reader)], responses=AUTH)
def jobs(limit: Annotated[int, Query(ge=1, le=200)] = 20, b: Backend = Depends(backend)) -> list[dict]:
    return [_job_info(job) for job in b.jobs.recent(limit)]


@router.get("/jobs/{job_id}", response_model=JobInfo, tags=["jobs"], dependencies=[Depends(reader)], responses=UNKNOWN)
def job(job_id: str, b: Backend = Depends(backend)) -> dict:
    found = b.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return _job_info(found)


# -- the app ---------------------------------------------------------------------------------------
def _talksearch_error(request: Request, exc: TalksearchError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503 if isinstance(exc, ModelError) else 400)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error: {exc.__class__.__name__}"}, status_code=500)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    await run_in_threadpool(app.state.backend.start)
    yield
    await run_in_threadpool(app.state.backend.stop)


def create_app(settings: Settings, service: Talksearch | None = None) -> FastAPI:
    """An app for one library; pass ``service`` to share already-loaded models."""
    app = FastAPI(title="talksearch", version=version("talksearch"), lifespan=_lifespan,
                  description="Search what was said in recorded talks, in any language, and play the exact clip.")
    app.state.backend = Backend(settings, service or Talksearch(settings))
    app.include_router(router)
    app.add_exception_handler(TalksearchError, _talksearch_error)
    app.add_exception_handler(Exception, _unexpected)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8")

    return app


def __getattr__(name: str):
    """``uvicorn api.app:app``: built on first access, from TALKSEARCH_* variables, so importing is free."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()["app"] = create_app(Settings.from_env())
    return globals()["app"]

