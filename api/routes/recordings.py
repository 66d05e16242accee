"""The recordings: listing, transcripts, metadata and speakers, deleting, and adding by upload or import."""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from core.errors import SpeakerError
from ingest.media import MEDIA_SUFFIXES
from ingest.subtitles import FORMATS
from ingest.transcribe import MAX_HOTWORDS, glossary

from ..access import reader, writer
from ..schemas import Deleted, JobInfo, RecordingDetail, RecordingInfo, RecordingMetadata, SpeakerInfo, SpeakerRename, TranscriptFile
from ..state import Backend, backend
from ..uploads import Intake, check_audio, check_transcript, form_metadata
from .common import AUTH, REFUSED, UNKNOWN, Id, accepted, new_router, recording_info, upload_form

TRANSCRIPT_TYPES = {"json": "application/json", "srt": "application/x-subrip; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}
TRANSCRIPT_SUFFIXES = frozenset(f".{fmt}" for fmt in FORMATS)
SUBTITLE_SUFFIXES = frozenset({".srt", ".vtt"})
UPLOAD_FILES = {"file": MEDIA_SUFFIXES}
IMPORT_FILES = {"transcript": TRANSCRIPT_SUFFIXES, "translation": SUBTITLE_SUFFIXES, "media": MEDIA_SUFFIXES}

router = new_router()


@router.get("/recordings", response_model=list[RecordingInfo], tags=["recordings"], dependencies=[Depends(reader)],
            responses=AUTH)
def recordings(request: Request, b: Backend = Depends(backend)) -> list[dict]:
    return [recording_info(request, r) for r in b.service.recordings()]


@router.get("/recordings/{recording_id}", response_model=RecordingDetail, tags=["recordings"],
            dependencies=[Depends(reader)], responses=UNKNOWN)
def recording(request: Request, recording_id: Id, b: Backend = Depends(backend)) -> dict:
    found, transcript = b.service.recording(recording_id)
    names = {v.label: v.shown for v in b.service.speakers(found.id)[1]}
    segments = [{"start": s.start, "end": s.end, "language": s.language, "text": s.text, "translation": s.translation,
                 "speaker": names.get(s.speaker, s.speaker), "speaker_label": s.speaker}
                for s in transcript.segments]
    return {**recording_info(request, found), "segments": segments}


@router.get("/recordings/{recording_id}/transcript", tags=["recordings"], dependencies=[Depends(reader)],
            response_class=Response, responses={**UNKNOWN, 200: {"description": "the transcript file", "content": {
                TRANSCRIPT_TYPES[fmt].split(";")[0]: {"schema": {"type": "string"}} for fmt in ("srt", "vtt")},
                "model": TranscriptFile}})
def transcript(recording_id: Id, fmt: Annotated[Literal[FORMATS], Query(alias="format")] = "json",
               b: Backend = Depends(backend)) -> Response:
    found = b.recording(recording_id)
    return Response(b.service.export(found.id, fmt), media_type=TRANSCRIPT_TYPES[fmt],
                    headers={"Content-Disposition": f'inline; filename="{found.id}.{fmt}"'})


@router.patch("/recordings/{recording_id}", response_model=RecordingInfo, tags=["recordings"], dependencies=[Depends(writer)],
              responses=UNKNOWN)
def edit(request: Request, recording_id: Id, changes: RecordingMetadata, b: Backend = Depends(backend)) -> dict:
    """Correct what is known about a recording; fields left out stay as they are."""
    return recording_info(request, b.service.edit(recording_id, changes.metadata()))


@router.get("/recordings/{recording_id}/speakers", response_model=list[SpeakerInfo], tags=["recordings"],
            dependencies=[Depends(reader)], responses=UNKNOWN)
def speakers(recording_id: Id, b: Backend = Depends(backend)) -> list[dict]:
    """The recording's voices, most talk time first (empty when it was not diarized)."""
    return [asdict(v) for v in b.service.speakers(recording_id)[1]]


@router.patch("/recordings/{recording_id}/speakers", response_model=list[SpeakerInfo], tags=["recordings"],
              dependencies=[Depends(writer)], responses=UNKNOWN)
def rename_speaker(recording_id: Id, rename: SpeakerRename, b: Backend = Depends(backend)) -> list[dict]:
    """Name one of the recording's voices; 404 when it has no such voice."""
    try:
        voices = b.service.rename_speaker(recording_id, rename.speaker, rename.name)
    except SpeakerError as exc:
        raise HTTPException(404, str(exc)) from None
    return [asdict(v) for v in voices]


@router.delete("/recordings/{recording_id}", response_model=Deleted, tags=["recordings"], dependencies=[Depends(writer)],
               responses=UNKNOWN)
def delete(recording_id: Id, b: Backend = Depends(backend)) -> dict:
    gone = b.service.delete(recording_id)
    return {"id": gone.id, "title": gone.title, "deleted": True}


@router.post("/recordings", status_code=202, response_model=JobInfo, tags=["recordings"], dependencies=[Depends(writer)],
             responses=REFUSED,
             openapi_extra=upload_form(UPLOAD_FILES, "file", "a recording (audio or video ffmpeg decodes) and what is known about it",
                                       {"hotwords": f"names, places and terms said in it, for the recogniser to spell as "
                                                    f"given, e.g. 'Kazan, светофоры, 세종' (at most {MAX_HOTWORDS} characters)"}))
async def upload(request: Request, response: Response, b: Backend = Depends(backend)) -> dict:
    """Start transcribing an upload in the background; poll ``GET /jobs/{id}``."""
    intake = await Intake(b.media_dir, UPLOAD_FILES, b.settings.http.max_upload_mb).read(request)
    try:
        file = intake.required("file")
        meta = form_metadata(intake.fields)
        hotwords = glossary(intake.fields.get("hotwords"), beside=b.settings.whisper.hotwords)
        await run_in_threadpool(check_audio, file.path, file.filename)
        job = b.runner.submit("upload", file.filename, [file.path],
                              lambda progress: b.service.ingest(file.path, meta, progress, names={file.path: file.filename},
                                                                hotwords=hotwords))
    except BaseException:  # refused, or the queue is full: nothing of it stays
        intake.discard()
        raise
    return accepted(request, response, job)


@router.post("/recordings/import", status_code=202, response_model=JobInfo, tags=["recordings"],
             dependencies=[Depends(writer)], responses=REFUSED,
             openapi_extra=upload_form(IMPORT_FILES, "transcript",
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
    return accepted(request, response, job)


STREAMED = (upload, import_transcript)
"""Endpoints that read their own multipart body; every other body is JSON, held to TALKSEARCH_MAX_JSON_KB."""
