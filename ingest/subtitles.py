"""Reading and writing timed transcripts: SRT, WebVTT and talksearch's own JSON.

Journalists often already hold subtitles; importing them skips recognition. The JSON
written by ``export`` reads back losslessly (words, languages, English rendering).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path

import py3langid
import srt
import webvtt

from .errors import TranscriptFormatError
from .records import Segment, Transcript, Word

FORMATS = ("srt", "vtt", "json")


def detect_text_language(text: str) -> str:
    """ISO 639-1 code of a piece of text (used when an imported transcript does not say)."""
    return py3langid.classify(text)[0]


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise TranscriptFormatError(f"{path}: unknown transcript format {path.suffix!r}; expected .srt, .vtt or .json")
    return suffix


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise TranscriptFormatError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TranscriptFormatError(f"{path}: not UTF-8 text") from exc


def _cues(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, text) for each non-empty cue of an SRT or VTT file."""
    text, kind = _read_text(path), _format_of(path)
    try:
        if kind == "srt":
            cues = [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(text)]
        else:
            cues = [(c.start_in_seconds + c.start_time.milliseconds / 1000, c.end_in_seconds + c.end_time.milliseconds / 1000, c.text)
                    for c in webvtt.from_string(text)]
    except (srt.SRTParseError, webvtt.errors.MalformedFileError, ValueError) as exc:
        raise TranscriptFormatError(f"{path}: not a valid {kind.upper()} file ({exc})") from exc
    cues = [(start, end, " ".join(body.split())) for start, end, body in cues if body.strip()]
    if not cues:
        raise TranscriptFormatError(f"{path}: holds no subtitle cues")
    for start, end, _ in cues:
        if end < start or start < 0:
            raise TranscriptFormatError(f"{path}: cue at {start:.2f}s ends before it starts")
    return cues


def read_transcript(path: Path, language: str | None = None, translation: Path | None = None) -> Transcript:
    """Parse a transcript file; ``translation`` is an optional English SRT/VTT on the same clock."""
    if _format_of(path) == "json":
        transcript = _from_json(path)
    else:
        cues = _cues(path)
        lang = language or detect_text_language(" ".join(text for _, _, text in cues))
        segments = [Segment(start, end, text, lang) for start, end, text in cues]
        transcript = Transcript(language=lang, duration=max(end for _, end, _ in cues), segments=segments)
    if language:
        transcript.language = language
        for segment in transcript.segments:
            segment.language = language
    if translation is not None:
        transcript.translation = [Segment(start, end, text, "en") for start, end, text in _cues(translation)]
    return transcript


def _from_json(path: Path) -> Transcript:
    try:
        data = json.loads(_read_text(path))
        raw_segments = data["segments"]
        segments = [
            Segment(float(s["start"]), float(s["end"]), str(s["text"]), s.get("language") or data.get("language") or "",
                    [Word(float(w["start"]), float(w["end"]), str(w["text"]), float(w.get("probability", 1.0))) for w in s.get("words") or []],
                    s.get("translation"))
            for s in raw_segments if str(s["text"]).strip()
        ]
        english = [Segment(float(s["start"]), float(s["end"]), str(s["text"]), "en") for s in data.get("translation") or []]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise TranscriptFormatError(f"{path}: not a talksearch JSON transcript ({exc.__class__.__name__}: {exc})") from exc
    if not segments:
        raise TranscriptFormatError(f"{path}: holds no segments")
    language = data.get("language") or detect_text_language(" ".join(s.text for s in segments))
    for segment in segments:
        segment.language = segment.language or language
    duration = float(data.get("duration") or max(s.end for s in segments))
    return Transcript(language=language, duration=duration, segments=segments, translation=english)


def write_transcript(transcript: Transcript, fmt: str, meta: dict | None = None) -> str:
    """Serialise for export: SRT/VTT hold the original text, JSON holds everything."""
    if fmt == "json":
        body = {**(meta or {}), "language": transcript.language, "duration": transcript.duration,
                "segments": [asdict(s) for s in transcript.segments],
                "translation": [{"start": s.start, "end": s.end, "text": s.text} for s in transcript.translation]}
        return json.dumps(body, ensure_ascii=False, indent=1)
    if fmt == "srt":
        return srt.compose([srt.Subtitle(i + 1, dt.timedelta(seconds=s.start), dt.timedelta(seconds=s.end), s.text)
                            for i, s in enumerate(transcript.segments)])
    if fmt == "vtt":
        stamp = lambda t: srt.timedelta_to_srt_timestamp(dt.timedelta(seconds=t)).replace(",", ".")
        return webvtt.WebVTT(captions=[webvtt.Caption(stamp(s.start), stamp(s.end), s.text) for s in transcript.segments]).content
    raise TranscriptFormatError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
