"""Response and request bodies of the HTTP API, so /docs describes every answer it can give.

JSON bodies are validated strictly, so the server takes exactly what the document describes: no
"5" or true for the number 5, and days only as YYYY-MM-DD (pydantic alone would read 0 as 1970-01-01).
Query strings are text by nature, so GET /search converts its numbers."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import fields as dataclass_fields
from typing import Annotated, Literal, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from index.catalog import Speaker
from index.library import SEARCH_MODES, Hit, SearchRequest
from index.ranking import SearchFilters
from ingest.records import Metadata, Recording, Segment

from .jobs import Job


class FieldError(BaseModel):
    """One field a 422 refuses: where it is and why, never the value sent."""

    loc: list[str | int] = Field(description="where: body, query, path or form, then the field's name")
    msg: str
    type: str


def _written_day(value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return dt.date.fromisoformat(value)  # a ValueError for 2026-13-01 is a validation error
    raise ValueError("a day is written YYYY-MM-DD")


Day = Annotated[dt.date, BeforeValidator(_written_day)]
"""A day as the documents say it is sent: YYYY-MM-DD text."""


def _whole(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


Whole = Annotated[int, BeforeValidator(_whole)]
"""An integer as JSON Schema has it: 27.0 is one too."""


class Problem(BaseModel):
    """Every error: one line saying what went wrong (a 422 from validation lists the fields at fault)."""

    detail: str | list[FieldError]


def _mirror(record: type, name: str, doc: str, notes: dict[str, str], omit: tuple[str, ...] = (),
            **extra) -> type[BaseModel]:
    """A response model with the fields of a record dataclass, so the two cannot drift apart, plus ``extra``."""
    hints = get_type_hints(record)
    mirrored = {f.name: (hints[f.name], Field(description=notes.get(f.name)))
                for f in dataclass_fields(record) if f.name not in omit}
    return create_model(name, __doc__=doc, **mirrored, **extra)


SearchHit = _mirror(Hit, "SearchHit", "The CLI's ``search --json`` hit, plus where to play it.", {
    "start": "seconds from the start of the recording",
    "language": "language the quote was spoken in",
    "text": "the quote in the language spoken",
    "translation": "English rendering, when spoken in another language",
    "highlights": "[start, end) character ranges of the words matching the query",
    "translation_highlights": "the same for the English rendering",
    "approximate": "a quoted phrase no transcript holds exactly, found as its nearest spelling "
                   "(recognition misspelled it); score is then the similarity, 0-1",
    "speaker": "who says it: the name given to the voice, its label (SPEAKER_1...) or the recording's speaker",
    "translation_confidence": "how far the English rendering means what was said (cosine of the two texts' "
                              "vectors); null without a rendering",
    "translation_doubtful": "the rendering is a machine rendering of low confidence: read the original"},
    clip_url=(str | None, Field(description="exactly this span as audio; null for a transcript without media")),
    media_url=(str | None, Field(description="the whole original, with a #t=start,end fragment; null without media")))


BLANK = "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + '"“”«»'
"""What says nothing to search for (index.library refuses a query of these alone): whitespace as Python's
str.split() knows it, spelled out because regular expression engines disagree on \\s, and quote marks."""


class SearchQuery(BaseModel):
    """The query string of ``GET /search``."""

    model_config = ConfigDict(populate_by_name=True)

    q: str = Field(min_length=1, max_length=1000, pattern=f"[^{BLANK}]",
                   description='what was said, in any language; in double quotes, that exact phrase')
    k: Whole = Field(10, ge=1, le=100, description="how many hits at most")
    lang: str | None = Field(None, description="only hits spoken in this language (ISO 639-1, e.g. ko)")
    recording: list[str] | None = Field(None, description="only these recordings: ids, unique id prefixes or titles")
    date_from: Day | None = Field(None, alias="from", description="only recordings dated on or after this day")
    date_to: Day | None = Field(None, alias="to", description="only recordings dated on or before this day")
    event: str | None = Field(None, description="only recordings of this event (any case)")
    session: str | None = Field(None, description="only recordings of this session (any case)")
    speaker: str | None = Field(None, description="only what this speaker says (any case): a named voice, or the "
                                "recording's speaker where its voices are unnamed")
    mode: Literal[SEARCH_MODES] = Field("hybrid", description="keywords and meaning fused, or one alone")

    def request(self) -> SearchRequest:
        """The search both front ends hand the service."""
        filters = SearchFilters(language=self.lang, recordings=self.recording, event=self.event, session=self.session,
                                speaker=self.speaker, date_from=self.date_from and self.date_from.isoformat(),
                                date_to=self.date_to and self.date_to.isoformat())
        return SearchRequest(self.q, self.k, self.mode, filters)


class SearchBody(SearchQuery):
    """Body of ``POST /search``: the same filters, as JSON."""

    model_config = ConfigDict(populate_by_name=True, strict=True)


def _rule(spec: dict) -> tuple[type, object]:
    """A metadata field's pydantic type and constraints, from its declaration in ``Metadata``."""
    rules = {k: v for k, v in spec.items() if k in ("min_length", "max_length", "pattern")}
    return (Day if spec.get("day") else str) | None, Field(None, description=spec["help"], **rules)


class _Given(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    def metadata(self) -> Metadata:
        """As the service takes it (days as YYYY-MM-DD); absent fields None."""
        return Metadata(**{name: str(value) for name, value in self.model_dump(exclude_none=True).items()})


RecordingMetadata = create_model(
    "RecordingMetadata", __base__=_Given,
    __doc__="What may be said about a recording, at upload or later (``PATCH``); absent fields stay as they are.",
    **{f.name: _rule(f.metadata) for f in dataclass_fields(Metadata)})


RecordingInfo = _mirror(Recording, "RecordingInfo", "A recording in the catalog.", {
    "source": "the name it was uploaded under, or the path it was added from", "duration": "seconds"},
    media_url=(str | None, Field(description="the original media with HTTP Range support; null without media")))


TranscriptSegment = _mirror(Segment, "TranscriptSegment", "One segment of a recording's transcript.", {
    "speaker": "who says it: a given name or a label (SPEAKER_1...); null when not diarized"}, omit=("words",),
    speaker_label=(str | None, Field(description="the voice's label, which PATCH /recordings/{id}/speakers renames")))


SpeakerInfo = _mirror(Speaker, "SpeakerInfo", "One voice of a recording.", {
    "label": "SPEAKER_1, SPEAKER_2, ... as diarization found them", "name": "the name given to this voice",
    "suggested": "the named voice of another recording this one sounds like", "seconds": "talk time",
    "quote": "its longest segment"})


class SpeakerRename(BaseModel):
    """Body of ``PATCH /recordings/{id}/speakers``: name one voice."""

    model_config = ConfigDict(extra="forbid", strict=True)

    speaker: str = Field(min_length=1, max_length=300, description="the voice's label (SPEAKER_2) or its current name")
    name: str | None = Field(max_length=300, description="the name to give; null or empty takes the name away")


class RecordingDetail(RecordingInfo):
    segments: list[TranscriptSegment]


ExportedSegment = _mirror(Segment, "ExportedSegment", "A segment with its words' timings.", {
    "words": "each recognised word with its timing; empty for an imported transcript",
    "translation": "English rendering, when spoken in another language"})


class TimedText(BaseModel):
    start: float
    end: float
    text: str


class TranscriptFile(BaseModel):
    """``GET /recordings/{id}/transcript`` as JSON: everything known about what was said, which
    ``POST /recordings/import`` reads back."""

    recording_id: str
    title: str
    language: str
    duration: float = Field(description="seconds")
    segments: list[ExportedSegment]
    translation: list[TimedText] = Field(description="English subtitles on the same clock, when imported with them")


class Deleted(BaseModel):
    id: str
    title: str
    deleted: bool = True


JobInfo = _mirror(Job, "JobInfo", "A background ingest; ``progress`` is the fraction of the audio done (0 to 1).", {
    "kind": "upload (speech recognition) or import (existing transcript)", "state": "queued, running, done or failed",
    "recording_id": "the recording, once done"}, omit=("files",))


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
