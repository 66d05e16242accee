"""English renderings are trusted only as far as they agree with what was said: each chunk's
rendering gets a confidence when stored, a doubtful one is marked on its hits and cannot carry a
chunk up the ranking."""
from __future__ import annotations

import pytest

from index.library import Library
from index.ranking import LOW_RENDERING, RENDERING_PENALTY, doubt
from ingest.records import Chunk, Recording, Segment, Transcript, Word

SPOKEN = "실시간 주차 정보도 제공되어 빈 주차 공간을 쉽게 찾을 수 있습니다."
GOOD = "Real-time parking information is provided, so free parking spaces are easy to find."
# What whisper base made of a misheard Korean news sentence (the development set's library).
NONSENSE = "From the fan to the top of the work, I also painted the back side of the back seat."


def add(library: Library, rid: str, text: str, english: str) -> None:
    segment = Segment(0.0, 6.0, text, "ko", [Word(0.0, 6.0, " " + text)], english)
    transcript = Transcript("ko", 6.0, [segment], [Segment(0.0, 6.0, english, "en")])
    library.add(Recording(rid, f"Talk {rid}", f"/talks/{rid}.ogg", f"hash-{rid}", 6.0, "ko", "2026-11-26T00:00:00"),
                transcript, [Chunk(rid, 0.0, 6.0, "ko", text, english)])


def test_a_doubtful_rendering_costs_in_proportion():
    chunk = Chunk("r", 0, 1, "ru", "текст", "text", translation_confidence=LOW_RENDERING - 0.2)
    assert doubt(chunk, through_english=True) == pytest.approx(RENDERING_PENALTY * 0.2)
    assert doubt(chunk, through_english=False) == 0.0  # a match on the words spoken is not in doubt
    assert doubt(Chunk("r", 0, 1, "ru", "текст", "text", translation_confidence=0.9), True) == 0.0
    assert doubt(Chunk("r", 0, 1, "ru", "текст", "text"), True) == 0.0  # not yet scored (a library from before)


def test_renderings_are_scored_with_the_real_model_and_doubtful_ones_marked(models, tmp_path):
    library = Library(tmp_path / "lib", models.embedder)
    add(library, "good", SPOKEN, GOOD)
    add(library, "bad", SPOKEN, NONSENSE)
    confidence = {c.recording_id: c.translation_confidence for r in ("good", "bad") for c in library.store.records.chunks_of(r)}
    assert confidence["good"] > LOW_RENDERING > confidence["bad"]
    hits = {h.recording_id: h for h in library.search("parking spaces", mode="dense")}
    assert not hits["good"].translation_doubtful and hits["bad"].translation_doubtful
    assert hits["bad"].translation_confidence == pytest.approx(confidence["bad"], abs=1e-4)
    library.reindex()  # re-embedding scores the renderings again
    assert {c.recording_id: c.translation_confidence for r in ("good", "bad") for c in library.store.records.chunks_of(r)} \
        == pytest.approx(confidence, abs=1e-3)
