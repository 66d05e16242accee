"""The HTTP API and the web page.

``create_app`` is cheap: models load once, in the startup of the app's lifespan, and stay loaded.
``uvicorn api.app:app`` gets an app configured from TALKSEARCH_* variables.

Who may do what. With TALKSEARCH_API_KEY set, the key protects changes (and reads too, with
TALKSEARCH_PROTECT_READS). It travels in a header that a page from another site cannot make a browser
send, and the cookie <audio> uses is SameSite, so such a server answers to any Host name; listing the
names it is reached by in TALKSEARCH_ALLOWED_HOSTS turns the Host check on as well, which is worth it
when reads are open: a page that points its own DNS name at this server (DNS rebinding) then cannot
read the library through a visitor's browser.
Without a key the server listens on loopback only and lets clients on this machine change the
library, and any web page a local browser opens is such a client. So it answers only requests
addressed to this machine by name (Host localhost, 127.0.0.1 or [::1] on any port, or a name in
TALKSEARCH_ALLOWED_HOSTS), since a rebinding page still sends its own name, and refuses changes a
browser sends on behalf of another origin (an Origin header naming another host than Host, or
Sec-Fetch-Site: cross-site). The page served here and clients that send no Origin (curl, the CLI) pass.

Bodies. A JSON body is refused with 413 beyond TALKSEARCH_MAX_JSON_KB as it arrives (a declared
length at once, a chunked one when the count passes the limit), before anything parses it; uploads
stream to disk under their own limit (api/uploads.py). A 422 names the fields at fault and why, but
never echoes the values sent.

/openapi.json states the access rules of the running configuration: an operation lists the key as a
security requirement only where this server enforces it.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import mimetypes
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Callable, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path as PathParam, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import ModelError, SpeakerError, TalksearchError
from index.library import UnknownRecording
from index.writelock import LibraryBusyError
from ingest.media import MEDIA_SUFFIXES, encode_clip
from ingest.records import Recording
from ingest.subtitles import FORMATS

from .config import Settings
from .jobs import RESTARTED, Job, JobRunner, JobStore, QueueFullError
from .schemas import (Deleted, Health, JobInfo, Problem, RecordingDetail, RecordingInfo, RecordingMetadata, SearchBody,
                      SearchHit, SearchQuery, SpeakerInfo, SpeakerRename, Stats, TranscriptFile)
from .service import Talksearch
from .uploads import Intake, check_audio, check_transcript, form_body, form_metadata

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
KEY_COOKIE = "talksearch_key"
"""Read endpoints also take the key from this cookie, so <audio> elements can fetch protected media."""
MAX_CLIP_SECONDS = 600.0
STALE_UPLOAD_SECONDS = 600.0
_STATUS = {UnknownRecording: 404, QueueFullError: 429, LibraryBusyError: 503, ModelError: 503}
CLIP_TYPES = {"ogg": "audio/ogg", "mp3": "audio/mpeg", "wav": "audio/wav"}
TRANSCRIPT_TYPES = {"json": "application/json", "srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}
TRANSCRIPT_SUFFIXES = frozenset(f".{fmt}" for fmt in FORMATS)
SUBTITLE_SUFFIXES = frozenset({".srt", ".vtt"})
UPLOAD_FILES = {"file": MEDIA_SUFFIXES}
IMPORT_FILES = {"transcript": TRANSCRIPT_SUFFIXES, "translation": SUBTITLE_SUFFIXES, "media": MEDIA_SUFFIXES}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Browsers play Ogg/Opus when it is called audio/ogg; "audio/opus" is not always recognised.
_MEDIA_TYPES = {".opus": "audio/ogg", ".oga": "audio/ogg", ".m4a": "audio/mp4", ".wav": "audio/wav"}
AUTH = {401: {"model": Problem, "description": "no API key sent"},
        403: {"model": Problem, "description": "a wrong key, or (without a key configured) a client elsewhere or another site's page"}}
UNKNOWN = {**AUTH, 404: {"model": Problem}}
REFUSED = {**AUTH, 415: {"model": Problem, "description": "a file not named as its field asks, or one that cannot be read as such"},
           429: {"model": Problem, "description": "too many jobs are waiting; Retry-After says when to try again"}}


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
        self.jobs = JobStore(self.service.settings.library / "jobs.sqlite")
        for job in self.jobs.fail_unfinished(RESTARTED, orphans=True):  # only those of processes that died
            self.tidy(job)
        for partial in self.media_dir.glob(".incoming-*"):  # uploads a crash cut off (a live one writes every second)
            if time.time() - partial.stat().st_mtime > STALE_UPLOAD_SECONDS:
                partial.unlink(missing_ok=True)
        self.runner = JobRunner(self.jobs, self.tidy)
        if self.settings.http.api_key is None:
            log.warning("no TALKSEARCH_API_KEY set: upload, import and delete are open to clients on this machine only")
        self.service.warm_up()
        self.service.stats()  # opens the library here, before request and job threads could race to open it
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


# -- who may do what -------------------------------------------------------------------------------
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's TALKSEARCH_API_KEY")
_bearer = HTTPBearer(auto_error=False, description="the server's TALKSEARCH_API_KEY as a bearer token")
_key_cookie = APIKeyCookie(name=KEY_COOKIE, auto_error=False, description="the key, for <audio> elements (reads only)")


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or "localhost"."""
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_key(request: Request, presented: str | None, action: str) -> None:
    expected = request.app.state.backend.settings.http.api_key
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
           bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
           cookie: Annotated[str | None, Security(_key_cookie)] = None) -> None:
    """Reads are open unless the server is configured to protect them."""
    if request.app.state.backend.settings.http.protect_reads:
        _check_key(request, key or (bearer.credentials if bearer else None) or cookie, "read")


def _host_name(host: str) -> str:
    """The name in a Host header, without its port or IPv6 brackets, in lower case."""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    return host.rpartition(":")[0].lower() if ":" in host else host.lower()


def _cross_site(headers: Headers) -> bool:
    """Whether a browser sent this on behalf of a page of another origin (the scheme is not compared:
    a proxy in front may end TLS)."""
    origin = headers.get("origin")
    return headers.get("sec-fetch-site") == "cross-site" or (
        origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower())


def _json_too_big(kb: int) -> HTTPException:
    return HTTPException(413, f"request body larger than the server's limit of {kb} KiB (TALKSEARCH_MAX_JSON_KB)")


def _refusal(settings: Settings, method: str, headers: Headers, json_kb: int | None) -> HTTPException | None:
    """Why a request is answered without being routed (see the module docstring), or None."""
    host = headers.get("host", "")
    name = _host_name(host)
    if (settings.http.api_key is None or settings.http.allowed_hosts) and not (is_loopback(name) or name in settings.http.allowed_hosts):
        return HTTPException(400, f"Host {host!r} is not a name of this server "
                                  f"(localhost, 127.0.0.1, [::1] or one in TALKSEARCH_ALLOWED_HOSTS)")
    if settings.http.api_key is None and method in WRITES and _cross_site(headers):
        return HTTPException(403, "no API key is configured on this server, so it takes no changes from another site's page")
    declared = headers.get("content-length", "")
    if json_kb is not None and declared.isdigit() and int(declared) > json_kb * 1024:
        return _json_too_big(json_kb)
    return None


def _limited(receive: Receive, kb: int) -> Receive:
    """``receive`` that refuses the body with 413 once it passes ``kb`` KiB, however it is sent."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > kb * 1024:
            raise _json_too_big(kb)
        return message
    return limited


def _streams_its_body(scope: Scope) -> bool:
    """Whether the request is for an upload, which reads its own body under TALKSEARCH_MAX_UPLOAD_MB."""
    return any(route.endpoint in STREAMED and route.matches(scope)[0] is Match.FULL for route in router.routes)


class Guard:
    """ASGI middleware: the Host and Origin rules and the JSON body limit, applied to every request
    before it is routed (and before its body is read)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            settings = scope["app"].state.backend.settings
            json_kb = None if _streams_its_body(scope) else settings.http.max_json_kb
            refusal = _refusal(settings, scope["method"], Headers(scope=scope), json_kb)
            if refusal is not None:
                await JSONResponse({"detail": refusal.detail}, refusal.status_code)(scope, receive, send)
                return
            if json_kb is not None:
                receive = _limited(receive, json_kb)
        await self.app(scope, receive, send)


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


def _form(accept: dict[str, frozenset[str]], required: str, what: str) -> dict:
    """``form_body``, saying which file names each field takes (others are refused with 415, unread)."""
    extra = form_body({name: name == required for name in accept}, what)
    fields = extra["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    for name, suffixes in accept.items():
        fields[name]["description"] = f"a file named *{', *'.join(sorted(suffixes))}"
    return extra


# -- routes ----------------------------------------------------------------------------------------
REPEATABLE = frozenset({"recording"})  # the query parameters that are lists


def _single_values(request: Request) -> None:
    """A parameter that takes one value, given several (``?limit=x&limit=3``), is refused: taking
    the last one silently accepted a request the schema forbids (found by Schemathesis)."""
    repeated = sorted({key for key, _ in request.query_params.multi_items()
                       if key not in REPEATABLE and len(request.query_params.getlist(key)) > 1})
    if repeated:
        raise RequestValidationError([{"loc": ("query", key), "msg": "takes one value, given more than once",
                                       "type": "repeated"} for key in repeated])


router = APIRouter(responses={400: {"model": Problem}, 413: {"model": Problem, "description": "a body over the limit"},
                              422: {"model": Problem}}, dependencies=[Depends(_single_values)])
Id = Annotated[str, PathParam(description="recording id (see GET /recordings), a unique start of one, or a title; never a path")]


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/health", response_model=Health, tags=["service"])
def health(b: Backend = Depends(backend)) -> dict:
    writes = "loopback-only" if b.settings.http.api_key is None else "api-key"
    return {"status": "ok", "version": version("talksearch"), "writes": writes}


@router.get("/stats", response_model=Stats, tags=["service"], dependencies=[Depends(reader)], responses=AUTH)
def stats(b: Backend = Depends(backend)) -> dict:
    counts = b.service.stats()
    return {"recordings": counts["recordings"], "chunks": counts["chunks"], "hours": round(counts["seconds"] / 3600, 3),
            "whisper_model": b.settings.whisper.model, "embedding_model": b.settings.embedder.model,
            "jobs_waiting": len(b.jobs.unfinished())}


def _search(request: Request, b: Backend, query: SearchQuery) -> list[dict]:
    hits = b.service.search(query.request())
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
def search_body(request: Request, query: SearchBody, b: Backend = Depends(backend)) -> list[dict]:
    return _search(request, b, query)


@router.get("/recordings", response_model=list[RecordingInfo], tags=["recordings"], dependencies=[Depends(reader)],
            responses=AUTH)
def recordings(request: Request, b: Backend = Depends(backend)) -> list[dict]:
    return [_recording_info(request, r) for r in b.service.recordings()]


@router.get("/recordings/{recording_id}", response_model=RecordingDetail, tags=["recordings"],
            dependencies=[Depends(reader)], responses=UNKNOWN)
def recording(request: Request, recording_id: Id, b: Backend = Depends(backend)) -> dict:
    found, transcript = b.service.recording(b.recording(recording_id).id)
    names = {v.label: v.shown for v in b.service.speakers(found.id)[1]}
    segments = [{"start": s.start, "end": s.end, "language": s.language, "text": s.text, "translation": s.translation,
                 "speaker": names.get(s.speaker, s.speaker), "speaker_label": s.speaker}
                for s in transcript.segments]
    return {**_recording_info(request, found), "segments": segments}


@router.get("/recordings/{recording_id}/transcript", tags=["recordings"], dependencies=[Depends(reader)],
            response_class=Response, responses={**UNKNOWN, 200: {"description": "the transcript file", "content": {
                TRANSCRIPT_TYPES[fmt].split(";")[0]: {"schema": {"type": "string"}} for fmt in ("srt", "vtt")},
                "model": TranscriptFile}})
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
    return _recording_info(request, b.service.edit(b.recording(recording_id).id, changes.metadata()))


@router.get("/recordings/{recording_id}/speakers", response_model=list[SpeakerInfo], tags=["recordings"],
            dependencies=[Depends(reader)], responses=UNKNOWN)
def speakers(recording_id: Id, b: Backend = Depends(backend)) -> list[dict]:
    """The recording's voices, most talk time first (empty when it was not diarized)."""
    return [asdict(v) for v in b.service.speakers(b.recording(recording_id).id)[1]]


@router.patch("/recordings/{recording_id}/speakers", response_model=list[SpeakerInfo], tags=["recordings"],
              dependencies=[Depends(writer)], responses=UNKNOWN)
def rename_speaker(recording_id: Id, rename: SpeakerRename, b: Backend = Depends(backend)) -> list[dict]:
    """Name one of the recording's voices; 404 when it has no such voice."""
    try:
        voices = b.service.rename_speaker(b.recording(recording_id).id, rename.speaker, rename.name)
    except SpeakerError as exc:
        raise HTTPException(404, str(exc)) from None
    return [asdict(v) for v in voices]


@router.delete("/recordings/{recording_id}", response_model=Deleted, tags=["recordings"], dependencies=[Depends(writer)],
               responses=UNKNOWN)
def delete(recording_id: Id, b: Backend = Depends(backend)) -> dict:
    gone = b.service.delete(b.recording(recording_id).id)
    return {"id": gone.id, "title": gone.title, "deleted": True}


@router.post("/recordings", status_code=202, response_model=JobInfo, tags=["recordings"], dependencies=[Depends(writer)],
             responses=REFUSED,
             openapi_extra=_form(UPLOAD_FILES, "file", "a recording (audio or video ffmpeg decodes) and what is known about it"))
async def upload(request: Request, response: Response, b: Backend = Depends(backend)) -> dict:
    """Start transcribing an upload in the background; poll ``GET /jobs/{id}``."""
    intake = await Intake(b.media_dir, UPLOAD_FILES, b.settings.http.max_upload_mb).read(request)
    try:
        file = intake.required("file")
        meta = form_metadata(intake.fields)
        await run_in_threadpool(check_audio, file.path, file.filename)
        job = b.runner.submit("upload", file.filename, [file.path],
                              lambda progress: b.service.ingest(file.path, meta, progress, names={file.path: file.filename}))
    except BaseException:  # refused, or the queue is full: nothing of it stays
        intake.discard()
        raise
    return _accepted(request, response, job)


@router.post("/recordings/import", status_code=202, response_model=JobInfo, tags=["recordings"],
             dependencies=[Depends(writer)], responses=REFUSED,
             openapi_extra=_form(IMPORT_FILES, "transcript",
                                 "an SRT/VTT/JSON transcript, optionally its English subtitles and its media"))
async def import_transcript(request: Request, response: Response, b: Backend = Depends(backend)) -> dict:
    """Add a recording from an existing transcript (no speech recognition) in the background."""
    intake = await Intake(b.media_dir, IMPORT_FILES, b.settings.http.max_upload_mb).read(request)
    try:
        text, english, media_file = intake.required("transcript"), intake.files.get("translation"), intake.files.get("media")
        meta = form_metadata(intake.fields)
        await run_in_threadpool(check_transcript, text, english, meta.language)
        if media_file is not None:
            await run_in_threadpool(check_audio, media_file.path, media_file.filename)
        job = b.runner.submit("import", text.filename, [s.path for s in intake.files.values()],
                              lambda progress: b.service.import_transcript(
                                  text.path, media_file and media_file.path, meta, english and english.path,
                                  names={s.path: s.filename for s in intake.files.values()}))
    except BaseException:  # refused, or the queue is full: nothing of it stays
        intake.discard()
        raise
    return _accepted(request, response, job)


STREAMED = (upload, import_transcript)
"""Endpoints that read their own multipart body; every other body is JSON, held to TALKSEARCH_MAX_JSON_KB."""


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
    """A user error is 400 (404 for a recording that is not there); a busy or unready server says
    so, and when to come back."""
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers={"Retry-After": "30"} if status >= 429 else None)


def _allowed(scope: Scope) -> set[str]:
    """The methods of the path's own routes: those of its most literal template (/recordings/import is
    not a recording id), or none for FastAPI's own paths (/docs), whose single route names them already."""
    matched = [route for route in router.routes if route.matches(scope)[0] is not Match.NONE]
    own = min(matched, key=lambda route: len(route.param_convertors)).path_format if matched else None
    return {method for route in matched if route.path_format == own for method in route.methods}


async def _http_problem(request: Request, exc: StarletteHTTPException) -> Response:
    """The usual answer, except that a 405 allows every method the path takes, not only one route's."""
    allowed = exc.status_code == 405 and _allowed(request.scope)
    if allowed:
        exc.headers = {"Allow": ", ".join(sorted(allowed))}
    return await http_exception_handler(request, exc)


def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each field at fault and why, without the values sent: they may be huge, or private."""
    return JSONResponse({"detail": [{"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
                                    for error in exc.errors()]}, status_code=422)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": f"internal error: {exc.__class__.__name__}"}, status_code=500)


@asynccontextmanager
async def _lifespan(app: FastAPI):
    await run_in_threadpool(app.state.backend.start)
    yield
    await run_in_threadpool(app.state.backend.stop)


def _access(settings: Settings) -> str:
    if settings.http.api_key is None:
        return ("No API key is configured: this server answers only requests addressed to localhost, 127.0.0.1, [::1] "
                "or TALKSEARCH_ALLOWED_HOSTS, and takes changes only from clients on its machine, never from another "
                "site's page.")
    reads = "Reads need it too." if settings.http.protect_reads else "Reads are open."
    return f"Changes need the API key, as X-API-Key or Authorization: Bearer. {reads}"


def _document_access(schema: dict, settings: Settings) -> None:
    """Keep the key requirement, 401 and 403 only on the operations where this configuration has them."""
    schema["info"]["description"] += f" {_access(settings)}"
    for route in router.routes:
        if not route.include_in_schema:
            continue
        guards = {dependency.dependency for dependency in route.dependencies}
        refusable = writer in guards or (reader in guards and settings.http.protect_reads)
        for method in route.methods:
            operation = schema["paths"][route.path_format][method.lower()]
            if not refusable or settings.http.api_key is None:
                operation.pop("security", None)
                operation["responses"].pop("401", None)
            if not refusable:
                operation["responses"].pop("403", None)


def _openapi(app: FastAPI) -> Callable[[], dict]:
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            _document_access(generate(), app.state.backend.settings)
        return app.openapi_schema
    return openapi


def create_app(settings: Settings, service: Talksearch | None = None) -> FastAPI:
    """An app for one library; pass ``service`` to share already-loaded models."""
    app = FastAPI(title="talksearch", version=version("talksearch"), lifespan=_lifespan,
                  description="Search what was said in recorded talks, in any language, and play the exact clip.")
    app.state.backend = Backend(settings, service or Talksearch(settings))
    app.include_router(router)
    app.openapi = _openapi(app)
    app.add_middleware(Guard)
    app.add_exception_handler(TalksearchError, _talksearch_error)
    app.add_exception_handler(StarletteHTTPException, _http_problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _unexpected)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


def __getattr__(name: str):
    """``uvicorn api.app:app``: built on first access, from TALKSEARCH_* variables, so importing is free."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()["app"] = create_app(Settings.from_env())
    return globals()["app"]

