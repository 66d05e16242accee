"""Response and request bodies of the HTTP API, so /docs describes every answer it can give."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """Every error: one line saying what went wrong (422 gives a list of the fields at fault)."""

    detail: str | list


class SearchHit(BaseModel):
    """The CLI's ``search --json`` hit, plus where to play it."""

    recording_id: str
    title: str
    source: str
    start: float = Field(description="seconds from the start of the recording")
    end: float
    language: str = Field(description="language the quote was spoken in")
    text: str = Field(description="the quote in the language spoken")
    translation: str | None = Field(description="English rendering, when spoken in another language")
    score: float
    clip_url: str | None = Field(description="exactly this span as audio; null for a transcript without media")
    media_url: str | None = Field(description="the whole original, with a #t=start,end fragment; null without media")


class SearchQuery(BaseModel):
    """Body of ``POST /search``: the same filters as the query string of ``GET /search``."""

    model_config = ConfigDict(populate_by_name=True)

    q: str = Field(min_length=1, max_length=1000, pattern=r"\S", description="what was said, in any language")
    k: int = Field(10, ge=1, le=100, description="how many hits at most")
    lang: str | None = Field(None, description="only hits spoken in this language (ISO 639-1, e.g. ko)")
    recording: list[str] | None = Field(None, description="only these recording ids")
    date_from: dt.date | None = Field(None, alias="from", description="only recordings dated on or after this day")
    date_to: dt.date | None = Field(None, alias="to", description="only recordings dated on or before this day")


class RecordingInfo(BaseModel):
    id: str
    title: str
    source: str
    content_hash: str
    duration: float
    language: str
    added_at: str
    has_media: bool
    event: str | None
    session: str | None
    speaker: str | None
    date: str | None
    media_url: str | None = Field(description="the original media with HTTP Range support; null without media")


class TranscriptSegment(BaseModel):
    start: float
    end: float
    language: str
    text: str
    translation: str | None


class RecordingDetail(RecordingInfo):
    segments: list[TranscriptSegment]


class Deleted(BaseModel):
    id: str
    title: str
    deleted: bool = True


class JobInfo(BaseModel):
    """A background ingest: ``progress`` is the fraction of the audio done (0 to 1)."""

    id: str
    kind: str = Field(description="upload (speech recognition) or import (existing transcript)")
    state: str = Field(description="queued, running, done or failed")
    progress: float
    filename: str
    error: str | None
    recording_id: str | None = Field(description="the recording, once done")
    note: str | None
    created_at: str
    updated_at: str


class Health(BaseModel):
    status: str
    version: str
    writes: str = Field(description="'api-key' or 'loopback-only' (no key configured)")


class Stats(BaseModel):
    recordings: int
    chunks: int
    hours: float = Field(description="hours of audio in the library")
    whisper_model: str
    embedding_model: str
    jobs_waiting: int = Field(description="ingest jobs queued or running")
