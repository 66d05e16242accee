"""Reading and writing timed transcripts: SRT, WebVTT and talksearch's own JSON.

Journalists often already hold subtitles; importing them skips recognition. The JSON
written by ``export`` reads back losslessly (words, languages, English rendering).

An imported file is untrusted input, and its times and languages go straight into the library's
statistics, search filters and exports, so every value is checked before anything is built, and
the first wrong one is refused with a one-line TranscriptFormatError that says where it is
("segment 3: ends before it starts"). Files are at most MAX_TRANSCRIPT_BYTES; JSON holds no NaN or
Infinity and no nesting deeper than Python's parser takes; every time is a number of seconds from 0
to the longest recording accepted, with start <= end; text is a string; a language is one Whisper
or the text-language detector knows. Subtitle cues are put in time order (players show them by
time, and files edited by hand are sometimes out of order), while talksearch's JSON must already be
in order, segments and the words in each, as ``export`` writes it.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

import py3langid
import srt
import webvtt

from core.errors import TranscriptFormatError
from core.language import detect_text_language

from .media import MAX_SECONDS
from .records import Segment, Transcript, Word

FORMATS = ("srt", "vtt", "json")
# Far above any real transcript: a four-hour talk exported with word timings is about 5 MB.
MAX_TRANSCRIPT_BYTES = 32 * 1024 * 1024


@functools.cache
def known_languages() -> frozenset[str]:
    """Codes a transcript may give: those Whisper transcribes and those detect_text_language answers,
    so whatever talksearch exported reads back. (faster-whisper is imported here, not above: it
    took 0.1 s of a command-line search's start-up, which never reads a transcript.)"""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES) | {code for code, _ in py3langid.rank("")}


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise TranscriptFormatError(f"{path}: unknown transcript format {path.suffix!r}; expected .srt, .vtt or .json")
    return suffix


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise TranscriptFormatError(f"{path}: no such file")
    if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
        raise TranscriptFormatError(f"{path}: larger than {MAX_TRANSCRIPT_BYTES // 2**20} MB, far more than any transcript")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TranscriptFormatError(f"{path}: not UTF-8 text") from exc


@dataclass
class _Checks:
    """The checks on one file's values; a wrong value is reported with where it is."""

    path: Path
    max_seconds: float

    def fail(self, where: str, problem: str) -> NoReturn:
        raise TranscriptFormatError(f"{self.path}: {where}: {problem}")

    def seconds(self, where: str, name: str, value: object) -> float:
        if not isinstance(value, float):  # JSON numbers are read as floats; true/false are not numbers
            self.fail(where, f'"{name}" must be a number of seconds')
        if not 0 <= value <= self.max_seconds:
            self.fail(where, f"{name} {value:g} s is not between 0 and {self.max_seconds:g} s (the longest recording accepted)")
        return value

    def span(self, where: str, item: dict) -> tuple[float, float]:
        start, end = self.seconds(where, "start", item.get("start")), self.seconds(where, "end", item.get("end"))
        if end < start:
            self.fail(where, f"ends before it starts ({start:g} s to {end:g} s)")
        return start, end

    def text(self, where: str, item: dict, name: str = "text") -> str:
        if not isinstance(item.get(name), str):
            self.fail(where, f'"{name}" must be a string')
        return item[name]

    def language(self, where: str, code: object) -> str | None:
        if code is not None and code not in known_languages():
            self.fail(where, f"unknown language code {code!r}")
        return code

    def entries(self, where: str, value: object) -> list[dict]:
        if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
            self.fail(where, "must be a list of objects")
        return value

    def probability(self, where: str, word: dict) -> float:
        value = word.get("probability", 1.0)
        if not isinstance(value, float) or not 0 <= value <= 1:
            self.fail(where, '"probability" must be a number from 0 to 1')
        return value

    def in_order(self, spans: list[tuple[float, float]], label: str) -> None:
        """Each span starts no earlier than the one before; ``label`` names the n-th ("segment {}")."""
        for number, (before, now) in enumerate(zip(spans, spans[1:]), 2):
            if now[0] < before[0]:
                self.fail(label.format(number), f"starts before {label.format(number - 1)} ({now[0]:g} s < {before[0]:g} s)")


def _cues(path: Path, max_seconds: float) -> list[tuple[float, float, str, str | None]]:
    """(start, end, text, speaker) for each non-empty cue of an SRT or VTT file, in time order;
    the speaker is a VTT cue's voice tag (``<v Name>``), None otherwise."""
    text, kind = _read_text(path), _format_of(path)
    try:
        if kind == "srt":
            cues = [(c.start.total_seconds(), c.end.total_seconds(), c.content, None) for c in srt.parse(text)]
        else:
            cues = [(c.start_in_seconds + c.start_time.milliseconds / 1000, c.end_in_seconds + c.end_time.milliseconds / 1000, c.text,
                     c.voice) for c in webvtt.from_string(text)]
    except (srt.SRTParseError, webvtt.errors.MalformedFileError, ValueError, OverflowError) as exc:
        raise TranscriptFormatError(f"{path}: not a valid {kind.upper()} file ({exc})") from exc
    checks = _Checks(path, max_seconds)
    for number, (start, end, _, _) in enumerate(cues, 1):
        checks.span(f"cue {number}", {"start": float(start), "end": float(end)})
    cues = sorted(((float(start), float(end), " ".join(body.split()), voice) for start, end, body, voice in cues if body.strip()),
                  key=lambda cue: cue[0])
    if not cues:
        raise TranscriptFormatError(f"{path}: holds no subtitle cues")
    return cues


def read_transcript(path: Path, language: str | None = None, translation: Path | None = None,
                    max_seconds: float = MAX_SECONDS) -> Transcript:
    """Parse a transcript file; ``translation`` is an optional English SRT/VTT on the same clock.
    ``language``, when given, is the language of every segment; ``max_seconds`` bounds every time."""
    _Checks(path, max_seconds).language("language", language)
    if _format_of(path) == "json":
        transcript = _from_json(path, max_seconds)
    else:
        cues = _cues(path, max_seconds)
        lang = language or detect_text_language(" ".join(text for _, _, text, _ in cues))
        segments = [Segment(start, end, text, lang, speaker=voice) for start, end, text, voice in cues]
        transcript = Transcript(language=lang, duration=max(end for _, end, _, _ in cues), segments=segments)
    if language:
        transcript.language = language
        for segment in transcript.segments:
            segment.language = language
    if translation is not None:
        transcript.translation = [Segment(start, end, text, "en") for start, end, text, _ in _cues(translation, max_seconds)]
    return transcript


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(path: Path) -> object:
    """The file's JSON, its numbers as floats (so 1e999 and a 400-digit integer are infinite, and refused)."""
    try:
        return json.loads(_read_text(path), parse_constant=_refuse_constant, parse_int=float)
    except RecursionError as exc:
        raise TranscriptFormatError(f"{path}: JSON nested too deeply") from exc
    except ValueError as exc:  # json.JSONDecodeError is one
        raise TranscriptFormatError(f"{path}: not valid JSON ({exc})") from exc


def _from_json(path: Path, max_seconds: float) -> Transcript:
    data, checks = _parse_json(path), _Checks(path, max_seconds)
    if not isinstance(data, dict):
        checks.fail("top level", 'not a talksearch JSON transcript (an object with "segments")')
    segments = [_segment(checks, f"segment {n}", raw) for n, raw in enumerate(checks.entries('"segments"', data.get("segments")), 1)]
    checks.in_order([(s.start, s.end) for s in segments], "segment {}")
    english = [Segment(*checks.span(f"translation {n}", raw), checks.text(f"translation {n}", raw), "en")
               for n, raw in enumerate(checks.entries('"translation"', data.get("translation") or []), 1)]
    checks.in_order([(s.start, s.end) for s in english], "translation {}")
    language = checks.language("language", data.get("language"))
    duration = None if data.get("duration") is None else checks.seconds("duration", "duration", data["duration"])
    segments = [s for s in segments if s.text.strip()]
    if not segments:
        raise TranscriptFormatError(f"{path}: holds no segments")
    language = language or detect_text_language(" ".join(s.text for s in segments))
    for segment in segments:
        segment.language = segment.language or language
    return Transcript(language=language, duration=duration or max(s.end for s in segments), segments=segments,
                      translation=english)


def _segment(checks: _Checks, where: str, raw: dict) -> Segment:
    """One checked segment of a JSON transcript, its language left empty when the file gives it only once."""
    start, end = checks.span(where, raw)
    words = [Word(*checks.span(f"{where}, word {n}", w), checks.text(f"{where}, word {n}", w),
                  checks.probability(f"{where}, word {n}", w))
             for n, w in enumerate(checks.entries(f'{where}: "words"', raw.get("words") or []), 1)]
    checks.in_order([(w.start, w.end) for w in words], f"{where}, word {{}}")
    rendering = None if raw.get("translation") is None else checks.text(where, raw, "translation")
    speaker = None if raw.get("speaker") is None else checks.text(where, raw, "speaker")
    return Segment(start, end, checks.text(where, raw), checks.language(where, raw.get("language")) or "", words, rendering,
                   speaker)


def write_transcript(transcript: Transcript, fmt: str, meta: dict | None = None) -> str:
    """Serialise for export: SRT/VTT hold the original text, JSON holds everything. Speakers:
    each JSON segment's ``speaker``, a VTT voice tag (``<v Name>``) on every cue, and in SRT
    ``Name:`` before the first cue of each turn."""
    if fmt == "json":
        body = {**(meta or {}), "language": transcript.language, "duration": transcript.duration,
                "segments": [asdict(s) for s in transcript.segments],
                "translation": [{"start": s.start, "end": s.end, "text": s.text} for s in transcript.translation]}
        return json.dumps(body, ensure_ascii=False, indent=1)
    if fmt == "srt":
        segments = transcript.segments
        turn = [s.speaker is not None and (i == 0 or s.speaker != segments[i - 1].speaker) for i, s in enumerate(segments)]
        return srt.compose([srt.Subtitle(i + 1, dt.timedelta(seconds=s.start), dt.timedelta(seconds=s.end),
                                         f"{_voice(s.speaker)}: {s.text}" if turn[i] else s.text)
                            for i, s in enumerate(segments)])
    if fmt == "vtt":
        stamp = lambda t: srt.timedelta_to_srt_timestamp(dt.timedelta(seconds=t)).replace(",", ".")
        return webvtt.WebVTT(captions=[webvtt.Caption(stamp(s.start), stamp(s.end),
                                                      f"<v {_voice(s.speaker)}>{s.text}" if s.speaker else s.text)
                                       for s in transcript.segments]).content
    raise TranscriptFormatError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def _voice(name: str) -> str:
    """A speaker name fit for a cue: one line, no tag delimiters."""
    return " ".join(name.replace(">", " ").replace("<", " ").split())
