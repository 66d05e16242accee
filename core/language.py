"""Which language a piece of text is in: an imported transcript that does not say, a query to search."""
from __future__ import annotations

import py3langid


def detect_text_language(text: str) -> str:
    """ISO 639-1 code of a piece of text."""
    return py3langid.classify(text)[0]
