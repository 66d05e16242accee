"""Time alignment of the English rendering to the original speech.

Whisper's translate pass segments the audio differently from the transcribe pass, so
sentences cannot be paired by index; they are paired by how much their times overlap.
"""
from __future__ import annotations

from .records import Segment


def overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Seconds two spans share (0 when disjoint)."""
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


def render(translation: list[Segment], start: float, end: float) -> str | None:
    """English text for [start, end]: translated segments that lie mostly inside the span.

    A translated segment counts when at least half of it falls in the span, or when the span
    is wholly inside it (a short clip of a long translated sentence still gets its English).
    """
    picked = []
    for piece in translation:
        shared = overlap(start, end, piece.start, piece.end)
        length = max(piece.end - piece.start, 1e-6)
        if shared >= 0.5 * length or (shared > 0 and shared >= 0.5 * (end - start)):
            picked.append(piece.text.strip())
    return " ".join(picked) or None


def attach(segments: list[Segment], translation: list[Segment]) -> None:
    """Give each original segment the English pieces that overlap it most (each piece used once)."""
    owners: dict[int, list[str]] = {}
    for piece in translation:
        shares = [overlap(s.start, s.end, piece.start, piece.end) for s in segments]
        if shares and max(shares) > 0:
            owners.setdefault(shares.index(max(shares)), []).append(piece.text.strip())
    for i, segment in enumerate(segments):
        if segment.language != "en":
            segment.translation = " ".join(owners.get(i, [])) or None
