"""Plain records passed from ingest to index and api.

They are dataclasses on purpose: easy to build in tests, to serialise to JSON and to store.
Times are seconds from the start of the recording.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from core.validation import iso_date


@dataclass
class Word:
    """One recognised word with its timing; ``text`` keeps Whisper's leading space."""

    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass
class Segment:
    """A stretch of speech in one language, as the recogniser or a subtitle cue gave it."""

    start: float
    end: float
    text: str
    language: str
    words: list[Word] = field(default_factory=list)
    translation: str | None = None
    # Who is speaking (a diarization label such as SPEAKER_1); None when not diarized.
    speaker: str | None = None


@dataclass
class Transcript:
    """Everything ingest learned about one recording's speech.

    ``translation`` holds English segments timed against the same clock; they are aligned to
    ``segments`` by time rather than by index because Whisper segments the two passes differently.
    """

    language: str
    duration: float
    segments: list[Segment]
    translation: list[Segment] = field(default_factory=list)
    language_probability: float = 1.0


def _described(help: str, **rules) -> object:
    """A metadata field: None when not given; ``help`` for the CLI, ``rules`` for the HTTP schema."""
    return field(default=None, metadata={"help": help, **rules})


@dataclass
class Metadata:
    """What a person says about a recording: at ingest, in a later edit. This one field set feeds the
    catalog's ``Recording``, what may be edited, the HTTP schema and the CLI's flags."""

    title: str | None = _described("the recording's title (default: the file name)", min_length=1, max_length=300)
    language: str | None = _described("spoken language code (skip detection), e.g. ko, ru, en", pattern=r"^[a-z]{2,3}$")
    event: str | None = _described("the event it was recorded at", max_length=300)
    session: str | None = _described("the session within the event", max_length=300)
    speaker: str | None = _described("who speaks", max_length=300)
    date: str | None = _described("the day it was recorded, YYYY-MM-DD", day=True)

    def __post_init__(self) -> None:
        if self.date is not None:
            iso_date(self.date)

    def given(self) -> dict[str, str]:
        """The fields that were set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


METADATA_FIELDS = tuple(f.name for f in fields(Metadata))


@dataclass
class Recording:
    """Catalog entry for one talk, panel or interview: what the file is, plus its ``Metadata`` fields."""

    id: str
    title: str
    source: str
    content_hash: str
    duration: float
    language: str
    added_at: str = ""
    has_media: bool = True
    event: str | None = None
    session: str | None = None
    speaker: str | None = None
    date: str | None = None


@dataclass
class Chunk:
    """The unit that gets embedded: a sentence-aligned window of one recording."""

    recording_id: str
    start: float
    end: float
    language: str
    text: str
    translation: str | None
    seq: int = 0
    id: int | None = None
    # The speaker with most talk time in the chunk (chunks are cut at long speaker turns).
    speaker: str | None = None
    # How well the English rendering agrees in meaning with the words spoken (cosine of the two
    # texts' vectors, set when stored; None without a rendering): machine renderings can be nonsense.
    translation_confidence: float | None = None
