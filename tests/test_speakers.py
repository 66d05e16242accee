"""Speakers stored per segment and chunk, named, filtered on and exported, on each store backend
(with the small hashing embedder; diarization itself is tested in test_diarize.py)."""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest
import webvtt

from index.catalog import Catalog
from index.library import Library
from index.ranking import SearchFilters
from ingest.chunking import chunk_transcript
from ingest.diarize import Diarization, Turn, assign
from ingest.records import Transcript
from ingest.subtitles import read_transcript, write_transcript
from tests.helpers import add, recording, timed

LABELS = ["SPEAKER_1", "SPEAKER_2", "SPEAKER_1"]


def panel() -> Transcript:
    """A two-voice panel: a host asks about budgets, a guest answers about bicycles."""
    transcript = Transcript("en", 60.0, [
        timed("Welcome everyone. Today we discuss the city budget for next year.", 0.0, "en"),
        timed("The bicycle lanes downtown will double in length. Every school gets a safe route.", 7.0, "en"),
        timed("Thank you. What about the budget for buses and trams?", 16.0, "en"),
    ])
    assign(transcript, Diarization([Turn(0.0, 6.8, "SPEAKER_1"), Turn(6.9, 15.8, "SPEAKER_2"), Turn(15.9, 22.0, "SPEAKER_1")]))
    return transcript


def keeps_speakers(records) -> None:
    """What the speaker columns hold: segments and chunks written with speakers read back with them."""
    transcript = panel()
    with records.transaction():
        records.add(recording("new"), transcript, chunk_transcript(transcript, "new"))
    assert [s.speaker for s in records.transcript("new").segments] == LABELS
    assert [c.speaker for c in records.chunks_of("new")] == LABELS


@pytest.fixture
def library(location, hashing_embedder):
    lib = Library(location("lib"), hashing_embedder)
    for rid in ("aaa", "bbb"):
        add(lib, rid, panel(), speaker="Moderator Team")
        voices = {"SPEAKER_1": np.eye(4, dtype=np.float32)[0], "SPEAKER_2": np.eye(4, dtype=np.float32)[1]}
        lib.store.records.set_speakers(rid, voices, {})
    return lib


def test_chunks_are_cut_at_long_turns_and_carry_their_speaker():
    chunks = chunk_transcript(panel(), "x")
    assert [c.speaker for c in chunks] == LABELS
    assert "bicycle" in chunks[1].text and "budget" not in chunks[1].text


def test_speakers_list_talk_time_and_a_quote_and_take_names(library):
    records = library.store.records
    voices = records.speakers("aaa")
    assert [v.label for v in voices] == ["SPEAKER_1", "SPEAKER_2"]
    assert voices[0].seconds > voices[1].seconds > 5
    assert "bicycle lanes" in voices[1].quote and voices[1].name is None
    records.rename_speaker("aaa", "SPEAKER_2", "Elena Ivanova")
    assert records.speakers("aaa")[1].shown == "Elena Ivanova"
    assert records.speakers("bbb")[1].shown == "SPEAKER_2"  # one recording's names stay its own


def test_hits_carry_the_speaker_and_the_filter_works_per_segment(library):
    library.store.records.rename_speaker("aaa", "SPEAKER_2", "Elena Ivanova")
    hits = library.search("bicycle lanes school route", k=5)
    by_recording = {h.recording_id: h for h in hits if "bicycle" in h.text}
    assert by_recording["aaa"].speaker == "Elena Ivanova" and by_recording["bbb"].speaker == "SPEAKER_2"
    for mode in ("hybrid", "lexical", "dense"):
        only = library.search("budget bicycle", k=10, filters=SearchFilters(speaker="elena ivanova"), mode=mode)
        assert only and all(h.recording_id == "aaa" and h.speaker == "Elena Ivanova" for h in only)
        assert all("budget" not in h.text for h in only)
    # unnamed voices fall back to the recording's own speaker metadata
    team = library.search("budget", k=10, filters=SearchFilters(speaker="Moderator Team"))
    assert team and "aaa" not in {h.recording_id for h in team if "bicycle" in h.text}


def test_registry_is_the_mean_voice_of_each_name(library):
    records = library.store.records
    records.rename_speaker("aaa", "SPEAKER_2", "Elena Ivanova")
    records.rename_speaker("bbb", "SPEAKER_1", "Elena Ivanova")
    registry = records.registry()
    assert list(registry) == ["Elena Ivanova"]
    assert np.allclose(registry["Elena Ivanova"], np.array([1, 1, 0, 0]) / np.sqrt(2))


def test_exports_carry_speaker_turns():
    transcript = panel()
    transcript.segments[1].speaker = "Elena Ivanova"
    cues = webvtt.from_string(write_transcript(transcript, "vtt"))
    assert [c.voice for c in cues][:2] == ["SPEAKER_1", "Elena Ivanova"]
    assert "<v Elena Ivanova>" in write_transcript(transcript, "vtt")
    assert "Elena Ivanova: The bicycle" in write_transcript(transcript, "srt")
    segments = json.loads(write_transcript(transcript, "json"))["segments"]
    assert [s["speaker"] for s in segments][:2] == ["SPEAKER_1", "Elena Ivanova"]


def test_imported_transcripts_keep_their_speakers(tmp_path):
    transcript = panel()
    transcript.segments[1].speaker = "Elena Ivanova"
    for fmt in ("vtt", "json"):
        path = tmp_path / f"panel.{fmt}"
        path.write_text(write_transcript(transcript, fmt), encoding="utf-8")
        back = read_transcript(path)
        assert [s.speaker for s in back.segments] == ["SPEAKER_1", "Elena Ivanova", "SPEAKER_1"]
        assert back.segments[1].text.startswith("The bicycle lanes")


def test_an_older_catalog_gains_the_speaker_columns(tmp_path):
    path = tmp_path / "catalog.sqlite"
    with closing(sqlite3.connect(path)) as old, old:
        old.executescript("""
            CREATE TABLE segments (id INTEGER PRIMARY KEY, recording_id TEXT NOT NULL, seq INTEGER NOT NULL, start REAL NOT NULL,
                "end" REAL NOT NULL, language TEXT NOT NULL, text TEXT NOT NULL, translation TEXT);
            CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, recording_id TEXT NOT NULL, seq INTEGER NOT NULL,
                start REAL NOT NULL, "end" REAL NOT NULL, language TEXT NOT NULL, text TEXT NOT NULL, translation TEXT);
            INSERT INTO chunks(recording_id, seq, start, "end", language, text) VALUES ('r', 0, 0, 1, 'en', 'old');""")
    catalog = Catalog(path)
    assert catalog.chunks_of("r")[0].speaker is None
    keeps_speakers(catalog)


def test_an_older_postgres_library_gains_the_speaker_columns(new_database):
    import psycopg

    from index.pgstore import PgStore

    uri = new_database("old")
    PgStore(uri, 8)  # creates today's tables
    with psycopg.connect(uri, autocommit=True) as conn:  # as a library made before speakers was
        conn.execute("DROP TABLE speakers; ALTER TABLE segments DROP COLUMN speaker; ALTER TABLE chunks DROP COLUMN speaker")
    store = PgStore(uri, 8)
    assert store.records.speakers("none") == []
    keeps_speakers(store.records)


def test_an_older_postgres_library_gains_the_rendering_confidence(new_database):
    """A library made with speakers but before renderings were scored is upgraded too."""
    import psycopg

    from index.pgstore import PgStore

    uri = new_database("before-confidence")
    PgStore(uri, 8)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("ALTER TABLE chunks DROP COLUMN translation_confidence")
    store = PgStore(uri, 8)
    keeps_speakers(store.records)
    assert all(c.translation_confidence is None for c in store.records.chunks_of("new"))
