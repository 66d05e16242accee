"""What adding a file produces, shared by the service and the Ray driver that stores for its workers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.vectors import View
from ingest.records import Chunk, Recording, Transcript


@dataclass
class Outcome:
    """Result of adding one file: the recording, and whether it was new."""

    recording: Recording
    added: bool
    chunks: int = 0


@dataclass
class Prepared:
    """A transcript ready to store: its English attached to its segments, cut into chunks, and
    the chunks' views embedded. Made where the models are (here, or on a Ray worker)."""

    transcript: Transcript
    chunks: list[Chunk]
    embedded: tuple[list[View], np.ndarray]


def recording_id(digest: str) -> str:
    """A recording's id: the start of its content hash."""
    return digest[:12]
