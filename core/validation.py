"""Checks on values users type (metadata, filters), shared by every front end."""
from __future__ import annotations

import datetime as dt

from .errors import UserError


def iso_date(value: str) -> str:
    """Dates are compared as text, so they must be YYYY-MM-DD; anything else is refused early."""
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise UserError(f"dates are written YYYY-MM-DD, not {value!r}") from None
    return value
