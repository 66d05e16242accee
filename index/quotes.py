"""Exact quotes: a query in double quotes must find the phrase as spoken, and the hit must start
and end on the quoted words, so a journalist gets the exact seconds."""
from __future__ import annotations

import re

from ingest.records import Word

_PUNCTUATION = re.compile(r"[^\w\s]+", re.UNICODE)


def quoted(query: str) -> str | None:
    """The phrase inside a query wrapped in double quotes (straight, curly or «»), else None."""
    match = re.fullmatch(r'\s*["“«](.+?)["”»]\s*', query)
    return match.group(1).strip() if match and match.group(1).strip() else None


def normalise(text: str) -> str:
    """Case, punctuation, spacing and ё/е differences do not count against a quote."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower().replace("ё", "е")).split())


def contains(text: str, phrase: str) -> bool:
    return f" {normalise(phrase)} " in f" {normalise(text)} "


def locate(words: list[Word], phrase: str) -> tuple[float, float] | None:
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
