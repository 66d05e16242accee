"""Quotes: a query in double quotes must find the phrase as spoken, and the hit must start and
end on the quoted words, so a journalist gets the exact seconds.

When no transcript holds the phrase exactly, recognition may have misspelled, split or merged its
words ("раздельный сбор мусора" heard as "разделные с бармусеров"): ``near`` finds the stretch of
words spelling it most nearly, letter by letter in the original script, and such hits are marked
approximate. The threshold is measured with ``python -m benchmarks.quotes`` (see the README).
"""
from __future__ import annotations

import re
from typing import Protocol

from rapidfuzz import fuzz

from core.language import normalise



def quoted(query: str) -> str | None:
    """The phrase inside a query wrapped in double quotes (straight, curly or «»), else None."""
    match = re.fullmatch(r'\s*["“«](.+?)["”»]\s*', query)
    return match.group(1).strip() if match and match.group(1).strip() else None


def contains(text: str, phrase: str) -> bool:
    return f" {normalise(phrase)} " in f" {normalise(text)} "


class Timed(Protocol):
    """A word, or a whole cue where a transcript has no word timings."""

    start: float
    end: float
    text: str


def locate(words: list[Timed], phrase: str) -> tuple[float, float] | None:
    """Start of the first and end of the last word of the phrase, matched word by word.

    Whisper's words may carry punctuation or split a token differently, so words are
    normalised and joined before comparison; the first occurrence wins.
    """
    target = normalise(phrase).split()
    tokens = [normalise(w.text) for w in words]
    for i in range(len(words)):
        joined: list[str] = []
        for j in range(i, len(words)):
            joined += tokens[j].split()
            if joined == target[: len(joined)]:
                if len(joined) == len(target):
                    return words[i].start, words[j].end
                continue
            break
    return None


# Least similarity (0-100: rapidfuzz's partial ratio over the letters, spaces ignored, so a split
# or merged word costs nothing) for an approximate quote. Chosen on half of the evaluation
# library's recordings (``python -m benchmarks.quotes``: 3-5 word runs of what was really said,
# asked of whisper base's words) as the lowest threshold "finding" at most 5% of phrases in
# recordings that never said them; on the held-out half it finds 76% of the phrases exact
# matching misses (ko 74%, ru 92%, en 67%) and "finds" 4.8% of absent ones.
NEAR_MIN = 70.0


def near(words: list[Timed], phrase: str, least: float = NEAR_MIN) -> tuple[float, float, float] | None:
    """(start, end, similarity 0-1) of the words spelling ``phrase`` most nearly, or None below ``least``."""
    target = normalise(phrase).replace(" ", "")
    letters: list[str] = []
    owner: list[int] = []  # which word each letter of the joined text comes from
    for i, word in enumerate(words):
        token = normalise(word.text).replace(" ", "")
        letters.append(token)
        owner += [i] * len(token)
    text = "".join(letters)
    if not target or not text:
        return None
    found = fuzz.partial_ratio_alignment(target, text, score_cutoff=least)
    if found is None or found.dest_end <= found.dest_start:
        return None
    first, last = words[owner[found.dest_start]], words[owner[found.dest_end - 1]]
    return first.start, last.end, round(found.score / 100, 4)
