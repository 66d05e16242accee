"""Text as languages write it: which language a piece is in (an imported transcript that does not say,
a query to search), and the form in which two spellings of the same words compare equal."""
from __future__ import annotations

import re

import py3langid

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def detect_text_language(text: str) -> str:
    """ISO 639-1 code of a piece of text."""
    return py3langid.classify(text)[0]


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces, ё as е: what quotes and the hallucination guards compare."""
    return " ".join(_NON_WORD.sub(" ", text.lower().replace("ё", "е")).split())
