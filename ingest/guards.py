"""Filters for Whisper's known failure modes, applied before anything is stored.

Whisper can loop ("it is said that it is said ...", measured on Korean translation at
temperature 0) and can invent text over silence or music ("Thank you for watching").
Storing either would put confident-looking nonsense into search results.

Whisper also writes text after the audio has run out: on the Russian rainbow fixture it closes
with «Редактор субтитров А.Синецкая Корректор В.Сухиашвили» (subtitle credits from its training
data), no-speech probability 0.75 and mean log-probability -0.65, so the confidence rule keeps it;
``hallucination_silence_threshold`` (2 s, 1 s or off) did not remove it either. Its words give it
away: six of its seven words take no time, all stamped on the clip's last frame, where words that
were heard take 0.1 s or more. ``is_untimed`` drops such segments.
"""
from __future__ import annotations

import zlib
from typing import Sequence

from core.language import normalise

# Phrases Whisper is known to produce over silence/noise; matched against a whole segment only.
_HALLUCINATIONS = {
    "thank you for watching", "thanks for watching", "thank you", "please subscribe",
    "subscribe to the channel", "продолжение следует", "спасибо за внимание", "субтитры сделал dimatorzok",
    "редактор субтитров а.семкин корректор а.егорова", "시청해주셔서 감사합니다", "구독과 좋아요 부탁드립니다",
    "you", "bye", "...",
}


def compression_ratio(text: str) -> float:
    """The same measure Whisper uses: repetitive text compresses unusually well."""
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


def is_repetition_loop(text: str, max_ratio: float = 2.4, min_words: int = 6) -> bool:
    """True when a phrase of 1–4 words repeats back to back 3+ times or the text compresses like a loop."""
    words = normalise(text).split()
    if len(words) < min_words:
        return False
    if compression_ratio(" ".join(words)) > max_ratio:
        return True
    for size in range(1, 5):
        repeats = 1
        for i in range(size, len(words) - size + 1, size):
            if words[i: i + size] == words[i - size: i]:
                repeats += 1
                if repeats >= 3 and size * repeats >= min_words // 2 + 1:
                    return True
            else:
                repeats = 1
    return False


def is_known_hallucination(text: str) -> bool:
    """True for stock phrases Whisper emits over silence (only when they are the whole segment)."""
    return normalise(text) in _HALLUCINATIONS or not normalise(text)


# A word shorter than this (seconds) was not timed on audio: the timing step is 20 ms.
_TIMELESS = 0.02


def is_untimed(durations: Sequence[float], share: float | None, min_words: int = 3) -> bool:
    """True when more than ``share`` of a segment's words (``min_words`` or more) last no time: the
    words were written where there was no audio left to time them on (None: never)."""
    if share is None or len(durations) < min_words:
        return False
    return sum(d < _TIMELESS for d in durations) > share * len(durations)


def keep_segment(text: str, avg_logprob: float, no_speech_prob: float, durations: Sequence[float] = (),
                 untimed_share: float | None = 0.5) -> bool:
    """Decide whether a recognised segment is speech worth storing; ``durations``: its words' lengths
    in seconds, when timed."""
    if is_known_hallucination(text) or is_repetition_loop(text) or is_untimed(durations, untimed_share):
        return False
    # Whisper's own rule, applied again after fallback: likely silence decoded with low confidence.
    return not (no_speech_prob > 0.6 and avg_logprob < -1.0)
