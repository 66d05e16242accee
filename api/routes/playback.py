"""Playing a hit: exactly its seconds as audio, or the original with Range support."""
from __future__ import annotations

import mimetypes
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Query, Response
from fastapi.responses import FileResponse

from ingest.media import encode_clip

from ..access import reader
from ..state import Backend, backend
from .common import UNKNOWN, Id, new_router

MAX_CLIP_SECONDS = 600.0
CLIP_TYPES = {"ogg": "audio/ogg", "mp3": "audio/mpeg", "wav": "audio/wav"}
# Browsers play Ogg/Opus when it is called audio/ogg; "audio/opus" is not always recognised.
_MEDIA_TYPES = {".opus": "audio/ogg", ".oga": "audio/ogg", ".m4a": "audio/mp4", ".wav": "audio/wav"}

router = new_router()


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
