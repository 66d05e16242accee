"""The shared speech fixtures that have reference texts, and how a transcript is scored against one:
edit distance over letters (rapidfuzz), case, spaces and punctuation ignored as
``core.language.normalise`` ignores them."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from rapidfuzz.distance import Levenshtein

from benchmarks import FIXTURES
from core.language import normalise
from ingest.media import SAMPLE_RATE



def fixture_clips(language: str) -> list[tuple[Path, str]]:
    """(media file, the text spoken in it) of every fixture clip in ``language`` with a reference:
    ``<language>/*.flac`` beside a ``.txt``, then the rows of ``<language>/zeroth/references.tsv``."""
    if not FIXTURES.is_dir():
        return []
    found = [(p, p.with_suffix(".txt").read_text(encoding="utf-8"))
             for p in sorted((FIXTURES / language).glob("*.flac")) if p.with_suffix(".txt").is_file()]
    table = FIXTURES / language / "zeroth" / "references.tsv"
    if table.is_file():
        rows = [line.split("\t") for line in table.read_text(encoding="utf-8").splitlines()[1:]]
        found += [(table.parent / name, text) for name, text, *_ in rows]
    return found


def write_flac(path: Path, samples: np.ndarray) -> None:
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for at in range(0, pcm.size, 1 << 16):
            frame = av.AudioFrame.from_ndarray(pcm[at: at + (1 << 16)].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, at
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def letters(text: str) -> str:
    return normalise(text).replace(" ", "")


def character_errors(hypothesis: str, reference: str) -> tuple[int, int]:
    """(edits, trailing letters) from the reference's letters to the hypothesis's. Trailing letters
    are the insertions at the end of the alignment: text the hypothesis has after the reference ends."""
    ref, hyp = letters(reference), letters(hypothesis)
    edits = Levenshtein.editops(ref, hyp)  # one alignment gives both: the edits and their opcodes
    opcodes = edits.as_opcodes()
    last = opcodes[-1] if len(opcodes) else None
    tail = last.dest_end - last.dest_start if last is not None and last.tag == "insert" else 0
    return len(edits), tail


def character_error_rate(hypothesis: str, reference: str) -> float:
    """Edits over letters and digits per reference letter."""
    ref = letters(reference)
    return Levenshtein.distance(ref, letters(hypothesis)) / max(1, len(ref))
