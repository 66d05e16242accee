"""Cutting a transcript into search chunks: whole sentences packed into ~15–40 s windows,
with the last sentence repeated at the start of the next chunk so a quote that straddles a
boundary is still found whole. Chunks never cut a word. A chunk is also cut where the speaker
changes once it holds ``turn_seconds`` of speech, so most chunks (and the hits cut from them)
are one speaker's words; a short interjection stays inside its neighbour's chunk."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .align import render
from .records import Chunk, Segment, Transcript, Word

_SENTENCE_END = re.compile(r"[.!?…。？！]+[\"'”»)\]]*$")


@dataclass
class Sentence:
    start: float
    end: float
    text: str
    language: str
    speaker: str | None = None


@dataclass
class ChunkingSettings:
    """Window sizes in seconds; overlap is counted in sentences."""

    min_seconds: float = 15.0
    max_seconds: float = 40.0
    overlap_sentences: int = 1
    turn_seconds: float = 5.0


def _join(words: list[Word]) -> str:
    return "".join(word.text for word in words).strip()


def sentences(segments: list[Segment], max_seconds: float, max_pause: float = 1.5) -> list[Sentence]:
    """Split speech into sentences at sentence punctuation, using word timings.

    Whisper segments often end mid-sentence, so a sentence runs on across segments of one
    language until its punctuation, a language change or a pause longer than ``max_pause``;
    a run-on longer than ``max_seconds`` is split at the widest pause between its words.
    Segments without words (imported subtitles) are sentences as they are. A sentence never
    runs across a speaker change.
    """
    result: list[Sentence] = []
    current: list[Word] = []
    language, speaker = "", None

    def flush() -> None:
        if current:
            result.extend(replace(s, speaker=speaker) for s in _bounded(list(current), language, max_seconds))
            current.clear()

    for segment in segments:
        if (segment.language != language or segment.speaker != speaker or not segment.words
                or (current and segment.words[0].start - current[-1].end > max_pause)):
            flush()
        language, speaker = segment.language, segment.speaker
        if not segment.words:
            result.append(Sentence(segment.start, segment.end, segment.text.strip(), segment.language, segment.speaker))
            continue
        for word in segment.words:
            current.append(word)
            if _SENTENCE_END.search(word.text.strip()):
                flush()
    flush()
    return [s for s in result if s.text]


def _bounded(words: list[Word], language: str, max_seconds: float) -> list[Sentence]:
    if words[-1].end - words[0].start <= max_seconds or len(words) < 2:
        return [Sentence(words[0].start, words[-1].end, _join(words), language)]
    gaps = [words[i + 1].start - words[i].end for i in range(len(words) - 1)]
    cut = gaps.index(max(gaps)) + 1
    return _bounded(words[:cut], language, max_seconds) + _bounded(words[cut:], language, max_seconds)


def chunk_transcript(transcript: Transcript, recording_id: str, settings: ChunkingSettings | None = None) -> list[Chunk]:
    """Pack sentences greedily: close a chunk once it reaches ``min_seconds`` or would pass
    ``max_seconds``, or when the language changes; then start the next one with the overlap."""
    settings = settings or ChunkingSettings()
    units = sentences(transcript.segments, settings.max_seconds)
    groups: list[list[Sentence]] = []
    current: list[Sentence] = []
    fresh = 0  # sentences in `current` that are not overlap carried from the previous chunk
    for unit in units:
        too_long = current and unit.end - current[0].start > settings.max_seconds
        switched = current and (unit.language != current[-1].language or (
            unit.speaker != current[-1].speaker and _talk(current, current[-1].speaker) >= settings.turn_seconds))
        if fresh and (too_long or switched):
            groups.append(current)
            carry = [] if switched else current[-settings.overlap_sentences:] if settings.overlap_sentences else []
            current, fresh = list(carry), 0
            if current and unit.end - current[0].start > settings.max_seconds:
                current = []
        current.append(unit)
        fresh += 1
        if current[-1].end - current[0].start >= settings.min_seconds:
            groups.append(current)
            current = current[-settings.overlap_sentences:] if settings.overlap_sentences else []
            fresh = 0
    if fresh:
        groups.append(current)
    chunks = []
    for seq, group in enumerate(groups):
        start, end, language = group[0].start, group[-1].end, group[0].language
        translation = None if language == "en" else render(transcript.translation, start, end)
        speaker = max(dict.fromkeys(s.speaker for s in group), key=lambda name: _talk(group, name))
        chunks.append(Chunk(recording_id, start, end, language, " ".join(s.text for s in group), translation, seq,
                            speaker=speaker))
    return chunks


def _talk(units: list[Sentence], speaker: str | None) -> float:
    """Seconds ``speaker`` talks in ``units``."""
    return sum(u.end - u.start for u in units if u.speaker == speaker)
