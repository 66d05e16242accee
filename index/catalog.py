"""The SQLite catalog: recordings, their segments, words, English rendering and chunks.

SQLite because a library must be one folder a user can copy, and because a single file
gives transactions: a failed ingest leaves nothing half-written.

The records role itself (``SqlRecords``) is written in SQL that SQLite and PostgreSQL both run
(``?`` placeholders, ``RETURNING``, ``ON CONFLICT``, ``casefold``/``instr`` provided by each
backend), so the PostgreSQL store reuses every query here rather than keeping a copy.
"""
from __future__ import annotations

import contextlib
import sqlite3
import threading
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from core.errors import UserError
from ingest.records import METADATA_FIELDS, Chunk, Recording, Segment, Transcript, Word

from .lexical import ANALYSIS, Term
from .ranking import SearchFilters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, content_hash TEXT NOT NULL UNIQUE,
    duration REAL NOT NULL, language TEXT NOT NULL, added_at TEXT NOT NULL, has_media INTEGER NOT NULL,
    event TEXT, session TEXT, speaker TEXT, date TEXT);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY, recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL, language TEXT NOT NULL,
    text TEXT NOT NULL, translation TEXT, speaker TEXT);
CREATE INDEX IF NOT EXISTS segments_by_recording ON segments(recording_id, start);
CREATE TABLE IF NOT EXISTS words (
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
    start REAL NOT NULL, "end" REAL NOT NULL, text TEXT NOT NULL, probability REAL NOT NULL);
CREATE INDEX IF NOT EXISTS words_by_segment ON words(segment_id);
CREATE TABLE IF NOT EXISTS translations (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    start REAL NOT NULL, "end" REAL NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS translations_by_recording ON translations(recording_id, start);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL, start REAL NOT NULL, "end" REAL NOT NULL, language TEXT NOT NULL,
    text TEXT NOT NULL, translation TEXT, speaker TEXT, translation_confidence REAL);
CREATE INDEX IF NOT EXISTS chunks_by_recording ON chunks(recording_id);
CREATE TABLE IF NOT EXISTS speakers (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE, label TEXT NOT NULL,
    name TEXT, suggested TEXT, voice BLOB, PRIMARY KEY (recording_id, label));
CREATE TABLE IF NOT EXISTS windows (
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE, view INTEGER NOT NULL,
    start REAL NOT NULL, "end" REAL NOT NULL, PRIMARY KEY (chunk_id, view));
CREATE TABLE IF NOT EXISTS chunk_terms (id INTEGER PRIMARY KEY, original TEXT NOT NULL, english TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sentence_terms (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    start REAL NOT NULL, "end" REAL NOT NULL, terms TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sentence_terms_by_recording ON sentence_terms(recording_id, start);
CREATE TABLE IF NOT EXISTS vector_segments (name TEXT PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (seq INTEGER PRIMARY KEY AUTOINCREMENT, chunk_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_language ON chunks(language);
"""
_RECORDING_COLUMNS = [f.name for f in fields(Recording)]
# Columns added after libraries were made: (table, column, declaration), added at open when missing.
UPGRADES = [("segments", "speaker", "TEXT"), ("chunks", "speaker", "TEXT"), ("chunks", "translation_confidence", "REAL"),
            ("sentence_terms", "places", "TEXT")]
# Indexes on those columns, made after them: the sentences stored before places were kept, which
# every open asks for (a scan of the table took 150 ms at a million chunks; the index is empty).
UPGRADE_INDEXES = "CREATE INDEX IF NOT EXISTS sentence_terms_unplaced ON sentence_terms(recording_id) WHERE places IS NULL;\n"


@dataclass(frozen=True)
class StoredSentence:
    """One sentence's keyword terms as analysed at ingest: all of them, from its words and its
    English rendering together (which sentence of a hit shares the query's words), and the first of
    them, those in its words, with where each sits (the highlights, without analysing the words
    again at query time: Kiwi took ~6 ms of a Korean search's ~17 at 100k chunks). ``spoken`` is
    None for sentences stored before places were kept."""

    terms: set[str]
    spoken: list[Term] | None

    @staticmethod
    def places(terms: list[Term], length: int) -> str:
        """The stored form of where the terms inside the first ``length`` characters sit."""
        return " ".join(f"{t.start}:{t.end}" for t in terms if t.end <= length)

    @classmethod
    def read(cls, terms: str, places: str | None) -> StoredSentence:
        texts = terms.split()
        if places is None:
            return cls(set(texts), None)
        spans = [place.split(":") for place in places.split()]
        return cls(set(texts), [Term(text, int(start), int(end)) for text, (start, end) in zip(texts, spans)])


@dataclass
class Speaker:
    """One voice of a recording: its diarization label, the name a user gave it (or the one the
    voice registry suggests), its talk time and its longest quote."""

    label: str
    name: str | None
    suggested: str | None
    seconds: float
    quote: str

    @property
    def shown(self) -> str:
        return self.name or self.label


# The name a chunk's speaker goes by: the one given to its diarization label, else the
# recording's own speaker metadata.
_CHUNK_SPEAKER = ("COALESCE((SELECT name FROM speakers WHERE speakers.recording_id = chunks.recording_id "
                  "AND speakers.label = chunks.speaker), recordings.speaker)")


def filter_sql(filters: SearchFilters) -> tuple[str, tuple]:
    """A WHERE clause over ``recordings`` (joined with ``chunks`` when a language or speaker is
    asked) for these filters; metadata compared case-insensitively, dates as ISO text. The
    speaker is matched per chunk: the name of the voice speaking there, or the recording's
    speaker where its voices are unnamed."""
    clauses, args = ["1 = 1"], []
    if filters.language is not None:
        clauses.append("chunks.language = ?")
        args.append(filters.language)
    if filters.recordings is not None:
        clauses.append(f"recordings.id IN ({','.join('?' * len(filters.recordings))})")
        args += filters.recordings
    for name in ("event", "session"):
        wanted = getattr(filters, name)
        if wanted is not None:
            clauses.append(f"casefold(recordings.{name}) = ?")
            args.append(wanted.casefold())
    if filters.speaker is not None:
        clauses.append(f"casefold({_CHUNK_SPEAKER}) = ?")
        args.append(filters.speaker.casefold())
    if filters.date_from is not None:
        clauses.append("recordings.date >= ?")
        args.append(filters.date_from)
    if filters.date_to is not None:
        clauses.append("recordings.date <= ? AND recordings.date > ''")
        args.append(filters.date_to)
    return " AND ".join(clauses), tuple(args)


class SqlRecords(ABC):
    """The records role over any SQL backend that supplies ``_rows``, ``_many`` and ``transaction``."""

    @abstractmethod
    def _rows(self, sql: str, args: tuple = ()) -> list: ...

    @abstractmethod
    def _many(self, sql: str, rows: list[tuple]) -> None: ...

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager: ...

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._rows("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   (key, value))

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self._rows("SELECT key, value FROM meta")}

    # -- recordings -------------------------------------------------------------------------
    @staticmethod
    def _recording(row: sqlite3.Row) -> Recording:
        values = dict(row)
        values["has_media"] = bool(values["has_media"])
        return Recording(**values)

    def recordings(self) -> list[Recording]:
        return [self._recording(r) for r in self._rows("SELECT * FROM recordings ORDER BY added_at, id")]

    def recording(self, recording_id: str) -> Recording | None:
        rows = self._rows("SELECT * FROM recordings WHERE id = ?", (recording_id,))
        return self._recording(rows[0]) if rows else None

    def by_hash(self, content_hash: str) -> Recording | None:
        rows = self._rows("SELECT * FROM recordings WHERE content_hash = ?", (content_hash,))
        return self._recording(rows[0]) if rows else None

    def find(self, ref: str) -> list[Recording]:
        """Recordings matching an id, an id prefix, or an exact title (what a user types)."""
        if not ref:
            return []
        prefix = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"  # a typed "%" or "_" is no wildcard
        rows = self._rows("SELECT * FROM recordings WHERE id = ? OR id LIKE ? ESCAPE '\\' OR title = ?", (ref, prefix, ref))
        exact = [r for r in rows if r["id"] == ref]
        return [self._recording(r) for r in (exact or rows)]

    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk]) -> list[int]:
        """Insert a recording with everything derived from it; returns the new chunk ids in order
        (ids are never reused: AUTOINCREMENT, or a sequence). Call inside ``transaction()``."""
        if not self.has_chunks():  # the first terms of a library: made by this version's analysis
            self.set_meta("keyword_analysis", ANALYSIS)
        values = asdict(recording)
        self._rows(f"INSERT INTO recordings({', '.join(_RECORDING_COLUMNS)}) VALUES ({', '.join('?' * len(_RECORDING_COLUMNS))})",
                   tuple(values[c] for c in _RECORDING_COLUMNS))
        for seq, segment in enumerate(transcript.segments):
            [(segment_id,)] = self._rows(
                'INSERT INTO segments(recording_id, seq, start, "end", language, text, translation, speaker) '
                'VALUES (?,?,?,?,?,?,?,?) RETURNING id',
                (recording.id, seq, segment.start, segment.end, segment.language, segment.text, segment.translation,
                 segment.speaker))
            self._many('INSERT INTO words(segment_id, seq, start, "end", text, probability) VALUES (?,?,?,?,?,?)',
                       [(segment_id, i, w.start, w.end, w.text, w.probability) for i, w in enumerate(segment.words)])
        self._many('INSERT INTO translations(recording_id, start, "end", text) VALUES (?,?,?,?)',
                   [(recording.id, s.start, s.end, s.text) for s in transcript.translation])
        ids = []
        for chunk in chunks:
            [(chunk.id,)] = self._rows(
                'INSERT INTO chunks(recording_id, seq, start, "end", language, text, translation, speaker) '
                'VALUES (?,?,?,?,?,?,?,?) RETURNING id',
                (recording.id, chunk.seq, chunk.start, chunk.end, chunk.language, chunk.text, chunk.translation,
                 chunk.speaker))
            ids.append(chunk.id)
        return ids

    def set_views(self, chunk_ids: list[int], rows: list[tuple[int, int, float, float]], confidence: dict[int, float]) -> None:
        """What is kept about these chunks' embedded views: the window spans (chunk id, view, start,
        end), replacing theirs, and how far each English rendering agrees with its chunk."""
        self._many("DELETE FROM windows WHERE chunk_id = ?", [(i,) for i in chunk_ids])
        self._many('INSERT INTO windows(chunk_id, view, start, "end") VALUES (?, ?, ?, ?)', rows)
        self._many("UPDATE chunks SET translation_confidence = ? WHERE id = ?", [(c, i) for i, c in confidence.items()])

    def window_spans(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[float, float]]:
        """Spans of the given (chunk id, view) windows. Looked up by chunk id, which the primary
        key indexes (a row-value IN scanned the whole table: 12 ms a search at 10k chunks)."""
        if not keys:
            return {}
        chunk_ids = sorted({chunk for chunk, _ in keys})
        rows = self._rows(f'SELECT * FROM windows WHERE chunk_id IN ({",".join("?" * len(chunk_ids))})', tuple(chunk_ids))
        wanted = set(keys)
        return {(r["chunk_id"], r["view"]): (r["start"], r["end"]) for r in rows if (r["chunk_id"], r["view"]) in wanted}

    EDITABLE = METADATA_FIELDS

    def update(self, recording_id: str, changes: dict[str, str | None]) -> None:
        """Change a recording's descriptive fields (never its id, source or hash)."""
        unknown = set(changes) - set(self.EDITABLE)
        if unknown:
            raise UserError(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(self.EDITABLE)}")
        if not changes:
            return
        with self.transaction():
            if "language" in changes:  # a corrected language applies to the speech labelled with the old one
                old = self._rows("SELECT language FROM recordings WHERE id = ?", (recording_id,))
                for table in ("segments", "chunks"):
                    self._rows(f"UPDATE {table} SET language = ? WHERE recording_id = ? AND language = ?",
                               (changes["language"], recording_id, old[0]["language"] if old else None))
            self._rows(f"UPDATE recordings SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                       (*changes.values(), recording_id))

    def delete(self, recording_id: str) -> list[int]:
        """Remove a recording and all rows hanging off it; returns the chunk ids it had.
        Call inside ``transaction()``."""
        ids = [r["id"] for r in self._rows("SELECT id FROM chunks WHERE recording_id = ?", (recording_id,))]
        self._many("DELETE FROM chunk_terms WHERE id = ?", [(i,) for i in ids])
        self._rows("DELETE FROM recordings WHERE id = ?", (recording_id,))
        return ids

    # -- transcript and chunks --------------------------------------------------------------
    def transcript(self, recording_id: str) -> Transcript | None:
        recording = self.recording(recording_id)
        if recording is None:
            return None
        whole = self.passage(recording_id, float("-inf"), float("inf"))
        return Transcript(recording.language, recording.duration, whole.segments, whole.translation)

    def chunks(self, ids: list[int]) -> dict[int, Chunk]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT * FROM chunks WHERE id IN ({marks})", tuple(ids))
        return {r["id"]: self._chunk(r) for r in rows}

    def chunks_of(self, recording_id: str) -> list[Chunk]:
        return [self._chunk(r) for r in self._rows("SELECT * FROM chunks WHERE recording_id = ? ORDER BY id", (recording_id,))]

    def has_chunks(self) -> bool:
        return bool(self._rows("SELECT 1 FROM chunks LIMIT 1"))

    def recordings_by_id(self, ids: set[str]) -> dict[str, Recording]:
        if not ids:
            return {}
        rows = self._rows(f"SELECT * FROM recordings WHERE id IN ({','.join('?' * len(ids))})", tuple(ids))
        return {r["id"]: self._recording(r) for r in rows}

    # -- filters, pushed down into SQL -------------------------------------------------------
    def chunk_ids(self, filters: SearchFilters) -> np.ndarray:
        """Ids of every chunk the filters admit, ascending: what retrieval may return."""
        where, args = filter_sql(filters)
        rows = self._rows(f"SELECT chunks.id FROM chunks JOIN recordings ON recordings.id = chunks.recording_id "
                          f"WHERE {where} ORDER BY chunks.id", args)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # -- keyword terms: the source the keyword index is built from --------------------------
    def set_terms(self, ids: list[int], terms: list[tuple[str, str]]) -> None:
        """(Re)write the analysed (original, English) terms of these chunks. Call inside ``transaction()``."""
        self._many("DELETE FROM chunk_terms WHERE id = ?", [(i,) for i in ids])
        self._many("INSERT INTO chunk_terms(id, original, english) VALUES (?, ?, ?)",
                             [(i, original, english) for i, (original, english) in zip(ids, terms, strict=True)])

    def holding(self, ids: list[int], terms: list[str]) -> dict[int, set[str]]:
        """Which of ``terms`` each chunk holds, decided in SQL (splitting 200 chunks' term lists
        in Python cost ~10 ms a search)."""
        if not ids or not terms:
            return {}
        tests = ", ".join("instr(words, ?) > 0" for _ in terms)
        rows = self._rows(f"SELECT id, {tests} FROM (SELECT id, ' ' || original || ' ' || english || ' ' AS words "
                          f"FROM chunk_terms WHERE id IN ({','.join('?' * len(ids))})) AS held",
                          (*[f" {t} " for t in terms], *ids))
        return {r[0]: {t for t, held in zip(terms, r[1:]) if held} for r in rows}

    def set_sentence_terms(self, recording_id: str, rows: list[tuple[float, float, str, str | None]]) -> None:
        """Each sentence's analysed terms (its words and its English rendering) and where the first
        of them sit in its words (see ``StoredSentence``). Call inside ``transaction()``."""
        self._rows("DELETE FROM sentence_terms WHERE recording_id = ?", (recording_id,))
        self._many('INSERT INTO sentence_terms(recording_id, start, "end", terms, places) VALUES (?, ?, ?, ?, ?)',
                   [(recording_id, *row) for row in rows])

    def sentence_terms(self, recording_id: str, start: float, end: float) -> dict[tuple[float, float], StoredSentence]:
        """The sentences inside [start, end] as analysed at ingest, keyed by their (start, end) rounded to 10 ms."""
        rows = self._rows('SELECT start, "end", terms, places FROM sentence_terms WHERE recording_id = ? AND start >= ? AND "end" <= ?',
                          (recording_id, start - 0.01, end + 0.01))
        return {(round(r[0], 2), round(r[1], 2)): StoredSentence.read(r[2], r[3]) for r in rows}

    def sentence_rows(self, recording_id: str) -> list[tuple[float, float, str, str | None]]:
        """A recording's sentence terms as ``set_sentence_terms`` takes them (copying a library)."""
        return [tuple(r) for r in self._rows('SELECT start, "end", terms, places FROM sentence_terms WHERE recording_id = ? '
                                             'ORDER BY start, "end"', (recording_id,))]

    def without_sentence_terms(self) -> list[str]:
        """Recordings added before sentence terms, or their places, were stored."""
        return [r[0] for r in self._rows("SELECT id FROM recordings WHERE id NOT IN (SELECT recording_id FROM sentence_terms) "
                                         "OR id IN (SELECT recording_id FROM sentence_terms WHERE places IS NULL)")]

    def terms_outdated(self) -> bool:
        """The stored keyword terms were made by another analysis than this version's."""
        return self.get_meta("keyword_analysis") != ANALYSIS and self.has_chunks()

    def forget_terms(self) -> None:
        """Drop every chunk's and sentence's terms, to be analysed again. Call inside ``transaction()``."""
        self._rows("DELETE FROM chunk_terms")
        self._rows("DELETE FROM sentence_terms")

    def count_terms(self) -> int:
        return self._rows("SELECT COUNT(*) FROM chunk_terms")[0][0]

    def unanalysed(self) -> list[Chunk]:
        """Chunks without keyword terms (a library made before keyword search, or repaired)."""
        return [self._chunk(r) for r in self._rows(
            "SELECT * FROM chunks WHERE id NOT IN (SELECT id FROM chunk_terms) ORDER BY id")]

    def keyword_docs(self, recording_id: str | None = None) -> list[tuple]:
        """(chunk id, recording id, language, original terms, English terms) of every chunk, or one recording's."""
        where, args = ("WHERE chunks.recording_id = ?", (recording_id,)) if recording_id else ("", ())
        return [tuple(r) for r in self._rows(
            "SELECT chunks.id, chunks.recording_id, chunks.language, chunk_terms.original, chunk_terms.english "
            f"FROM chunks JOIN chunk_terms ON chunk_terms.id = chunks.id {where} ORDER BY chunks.id", args)]

    def recording_ids(self, filters: SearchFilters) -> list[str] | None:
        """Recordings the recording-level filters admit (None when none is set)."""
        recording_level = replace(filters, language=None, speaker=None)
        if recording_level.empty:
            return None
        where, args = filter_sql(recording_level)
        return [r[0] for r in self._rows(f"SELECT id FROM recordings WHERE {where}", args)]

    @staticmethod
    def _chunk(r: sqlite3.Row) -> Chunk:
        return Chunk(r["recording_id"], r["start"], r["end"], r["language"], r["text"], r["translation"], r["seq"], r["id"],
                     r["speaker"], r["translation_confidence"])

    def passage(self, recording_id: str, start: float, end: float) -> Transcript:
        """The segments (with words) and English pieces of one recording that overlap [start, end]."""
        return self.passages([(recording_id, start, end)])[0]

    def passages(self, spans: list[tuple[str, float, float]]) -> list[Transcript]:
        """``passage`` for each (recording id, start, end), in three queries whatever their number:
        a page of ten hits took thirty."""
        if not spans:
            return []
        where = " OR ".join(['(recording_id = ? AND "end" > ? AND start < ?)'] * len(spans))
        args = tuple(value for span in spans for value in span)
        rows = self._rows(f"SELECT * FROM segments WHERE {where} ORDER BY recording_id, seq", args)
        words: dict[int, list[Word]] = {row["id"]: [] for row in rows}
        if rows:
            for w in self._rows(f'SELECT * FROM words WHERE segment_id IN ({",".join("?" * len(rows))}) ORDER BY segment_id, seq',
                                tuple(words)):
                words[w["segment_id"]].append(Word(w["start"], w["end"], w["text"], w["probability"]))
        english = self._rows(f"SELECT * FROM translations WHERE {where} ORDER BY start", args)

        def overlapping(found: list[sqlite3.Row], recording_id: str, start: float, end: float) -> list[sqlite3.Row]:
            return [r for r in found if r["recording_id"] == recording_id and r["end"] > start and r["start"] < end]

        passages = []
        for recording_id, start, end in spans:
            segments = [Segment(r["start"], r["end"], r["text"], r["language"], words[r["id"]], r["translation"], r["speaker"])
                        for r in overlapping(rows, recording_id, start, end)]
            translation = [Segment(r["start"], r["end"], r["text"], "en") for r in overlapping(english, recording_id, start, end)]
            passages.append(Transcript(segments[0].language if segments else "", end - start, segments, translation))
        return passages

    # -- speakers -----------------------------------------------------------------------------
    def set_speakers(self, recording_id: str, voices: dict[str, np.ndarray], suggested: dict[str, str]) -> None:
        """Store a recording's voices (label → mean embedding) and the names the registry suggests."""
        with self.transaction():
            self._many("INSERT INTO speakers(recording_id, label, suggested, voice) VALUES (?, ?, ?, ?)",
                       [(recording_id, label, suggested.get(label), np.asarray(v, dtype=np.float32).tobytes())
                        for label, v in voices.items()])

    def speakers(self, recording_id: str) -> list[Speaker]:
        """A recording's speakers, most talk time first."""
        known = {r["label"]: r for r in self._rows("SELECT * FROM speakers WHERE recording_id = ?", (recording_id,))}
        rows = self._rows('SELECT speaker, "end" - start AS seconds, text FROM segments '
                          "WHERE recording_id = ? AND speaker IS NOT NULL ORDER BY seq", (recording_id,))
        talk: dict[str, float] = {}
        quote: dict[str, tuple[float, str]] = {}
        for r in rows:
            talk[r["speaker"]] = talk.get(r["speaker"], 0.0) + r["seconds"]
            quote[r["speaker"]] = max(quote.get(r["speaker"], (0.0, "")), (r["seconds"], r["text"]))
        return sorted((Speaker(label, known[label]["name"] if label in known else None,
                               known[label]["suggested"] if label in known else None, round(seconds, 1), quote[label][1])
                       for label, seconds in talk.items()), key=lambda s: -s.seconds)

    def speaker_names(self, recording_ids: set[str]) -> dict[tuple[str, str], str]:
        """(recording id, label) → given name, for the named voices of these recordings."""
        if not recording_ids:
            return {}
        rows = self._rows(f"SELECT recording_id, label, name FROM speakers WHERE name IS NOT NULL AND recording_id IN "
                          f"({','.join('?' * len(recording_ids))})", tuple(sorted(recording_ids)))
        return {(r["recording_id"], r["label"]): r["name"] for r in rows}

    def rename_speaker(self, recording_id: str, label: str, name: str | None) -> None:
        """Name (or, with None, unname) one voice of a recording."""
        with self.transaction():
            self._rows("INSERT INTO speakers(recording_id, label, name) VALUES (?, ?, ?) "
                       "ON CONFLICT (recording_id, label) DO UPDATE SET name = excluded.name", (recording_id, label, name))

    def registry(self) -> dict[str, np.ndarray]:
        """Every named voice in the library: name → L2-normalised mean of its recordings' voices."""
        sums: dict[str, np.ndarray] = {}
        for r in self._rows("SELECT name, voice FROM speakers WHERE name IS NOT NULL AND voice IS NOT NULL"):
            sums[r["name"]] = sums.get(r["name"], 0) + np.frombuffer(bytes(r["voice"]), dtype=np.float32)
        return {name: v / np.linalg.norm(v) for name, v in sums.items()}

    def counts(self) -> dict[str, float]:
        row = self._rows("SELECT COUNT(*) AS n, COALESCE(SUM(duration), 0) AS seconds FROM recordings")[0]
        chunks = self._rows("SELECT COUNT(*) AS n FROM chunks")[0]["n"]
        return {"recordings": row["n"], "chunks": chunks, "seconds": row["seconds"]}


class Catalog(SqlRecords):
    """Thread-safe access to one catalog file (the API searches while a background job writes)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.RLock()
        # Other processes write the same file in turn (one at a time, under the store's writer lock):
        # wait for their commits rather than fail at once.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")  # a commit is on disk when it returns
        self._db.create_function("casefold", 1, lambda text: text.casefold() if text else text, deterministic=True)
        self._db.executescript(_SCHEMA)
        for table, column, declaration in UPGRADES:
            if column not in {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._db.executescript(UPGRADE_INDEXES)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All catalog writes inside commit together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def integrity(self) -> list[str]:
        """What SQLite's own check finds wrong in the file (empty when it is sound)."""
        return [r[0] for r in self._rows("PRAGMA quick_check") if r[0] != "ok"]

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _many(self, sql: str, rows: list[tuple]) -> None:
        with self._lock:
            self._db.executemany(sql, rows)

    # -- the vector store's manifest: which segment files hold live vectors ------------------
    def segments(self) -> dict[str, int]:
        return {r["name"]: r["rows"] for r in self._rows("SELECT * FROM vector_segments ORDER BY name")}

    def set_segments(self, added: dict[str, int], removed: list[str]) -> None:
        """Call inside ``transaction()``: the segment list changes with the rows it describes."""
        self._many("DELETE FROM vector_segments WHERE name = ?", [(n,) for n in removed])
        self._many("INSERT INTO vector_segments(name, rows) VALUES (?, ?)", list(added.items()))

    def bury(self, chunk_ids: list[int]) -> None:
        """Record deleted chunks whose vectors still sit in segment files (until compaction)."""
        self._many("INSERT INTO tombstones(chunk_id) VALUES (?)", [(i,) for i in chunk_ids])

    def tombstones(self, after: int = 0) -> tuple[list[int], int]:
        """Chunk ids buried after sequence number ``after``, and the newest sequence number."""
        rows = self._rows("SELECT seq, chunk_id FROM tombstones WHERE seq > ? ORDER BY seq", (after,))
        return [r["chunk_id"] for r in rows], (rows[-1]["seq"] if rows else after)
