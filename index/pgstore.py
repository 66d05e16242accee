"""The PostgreSQL store: records, keyword terms and vectors in one PostgreSQL database with
pgvector, so several ``talksearch serve`` processes and Ray workers share one library.

- Records: the catalog's own queries (``catalog.SqlRecords``) run here unchanged; this module
  supplies the tables, connections and transactions. Only the dialect differs: ``?`` becomes
  ``%s``, and two one-line SQL functions stand in for SQLite's ``instr`` and the catalog's
  ``casefold`` (``lower`` before PostgreSQL 18, whose own ``casefold`` takes precedence).
- Vectors: one row per view in a ``vector`` column, an HNSW index (inner product) over the two
  whole-chunk views only. A search asks the index for ``coarse_factor`` × k whole-chunk
  candidates, then scores every view of those chunks exactly in the same statement and
  keeps each chunk's best: the embedded store's recipe, so scores (inner products, higher is
  better) and hence fusion are the same. A filter admitting at most ``exact_subset`` chunks is
  scored exactly over their views; a broader one walks the graph with pgvector's iterative scan,
  so a selective filter still returns what exists. Measured on 10k synthetic chunks (40k 384-d
  vectors, 2-core machine): vector search p50 12.2 ms against the embedded store's exact 6.5 ms,
  the same top 10 for 99.4% of hits; a filter admitting 2% of the chunks 1.0 ms against 8.5 ms;
  adding a 25-chunk recording 247 ms against 121 ms (the graph grows with every insert).
- Keywords: the analysed terms the catalog keeps (``lexical.Analyzer``: kiwipiepy morphemes,
  Snowball stems) become a ``tsvector`` with the ``simple`` configuration (no further stemming
  or stop words) in a generated column with a GIN index. Ranking is ``ts_rank`` normalised by
  document length, not BM25: it weighs a term by its frequency in the chunk, with no inverse
  document frequency, so a common term counts as much as a rare one. Fusion uses the keyword
  ranking's order and the share of query terms a chunk holds, which both keep. On the 54
  labelled queries over the demo library (tests/test_search_quality_pg.py) hybrid and dense
  figures are identical to the embedded store's (hybrid MRR@10 0.906) and lexical ones differ by
  at most 0.02 (R@1 0.667 against BM25's 0.648, MRR@10 0.671 against 0.664).
- Writes: each is one transaction that first takes a transaction-scoped advisory lock, so
  writers from any process take turns as the embedded store's writer lock makes them, and a
  crashed writer's lock goes with its connection. Readers never wait: they see the last commit.
  Chunk ids come from an identity column, never reused. PostgreSQL maintains the HNSW and GIN
  indexes itself; ``maintain`` refreshes the planner's statistics after writes.
"""
from __future__ import annotations

import contextlib
import struct
import threading
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import psycopg
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format, TransactionStatus
from psycopg.types import TypeInfo

from ingest.records import Chunk, Recording, Transcript

from .catalog import UPGRADE_INDEXES, UPGRADES, SqlRecords, filter_sql
from .lexical import ANALYSIS, Analyzer
from .ranking import SearchFilters
from .store import (EmbeddedStore, Finding, Store, StoreError, analyse_terms, chunk_terms, folder_dimension, sentence_terms, shown,
                    view_rows)
from .vectors import VectorSettings, View

# Columns and tables added after libraries were made, added at open when any is missing: the
# embedded catalog's column list (``catalog.UPGRADES``) and the speakers table (``_UPGRADED``: the
# columns they bring, the speakers table's ``voice`` standing for the table).
_TYPES = {"TEXT": "TEXT", "REAL": "DOUBLE PRECISION"}
_UPGRADED = (*((table, column) for table, column, _ in UPGRADES), ("speakers", "voice"))
_UPGRADES = "".join(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {_TYPES[kind]};\n"
                    for table, column, kind in UPGRADES) + """CREATE TABLE IF NOT EXISTS speakers (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE, label TEXT NOT NULL,
    name TEXT, suggested TEXT, voice BYTEA, PRIMARY KEY (recording_id, label));
""" + UPGRADE_INDEXES
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE recordings (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, content_hash TEXT NOT NULL UNIQUE,
    duration DOUBLE PRECISION NOT NULL, language TEXT NOT NULL, added_at TEXT NOT NULL, has_media BOOLEAN NOT NULL,
    event TEXT, session TEXT, speaker TEXT, date TEXT);
CREATE TABLE segments (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
    start DOUBLE PRECISION NOT NULL, "end" DOUBLE PRECISION NOT NULL, language TEXT NOT NULL, text TEXT NOT NULL,
    translation TEXT, speaker TEXT);
CREATE INDEX segments_by_recording ON segments(recording_id, start);
CREATE TABLE words (
    segment_id BIGINT NOT NULL REFERENCES segments(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
    start DOUBLE PRECISION NOT NULL, "end" DOUBLE PRECISION NOT NULL, text TEXT NOT NULL,
    probability DOUBLE PRECISION NOT NULL);
CREATE INDEX words_by_segment ON words(segment_id);
CREATE TABLE translations (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    start DOUBLE PRECISION NOT NULL, "end" DOUBLE PRECISION NOT NULL, text TEXT NOT NULL);
CREATE INDEX translations_by_recording ON translations(recording_id, start);
CREATE TABLE chunks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
    start DOUBLE PRECISION NOT NULL, "end" DOUBLE PRECISION NOT NULL, language TEXT NOT NULL, text TEXT NOT NULL,
    translation TEXT, speaker TEXT, translation_confidence DOUBLE PRECISION);
CREATE INDEX chunks_by_recording ON chunks(recording_id);
CREATE TABLE speakers (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE, label TEXT NOT NULL,
    name TEXT, suggested TEXT, voice BYTEA, PRIMARY KEY (recording_id, label));
CREATE INDEX chunks_by_language ON chunks(language);
CREATE TABLE windows (
    chunk_id BIGINT NOT NULL REFERENCES chunks(id) ON DELETE CASCADE, view INTEGER NOT NULL,
    start DOUBLE PRECISION NOT NULL, "end" DOUBLE PRECISION NOT NULL, PRIMARY KEY (chunk_id, view));
CREATE TABLE chunk_terms (
    id BIGINT PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE, original TEXT NOT NULL, english TEXT NOT NULL,
    document tsvector GENERATED ALWAYS AS (to_tsvector('simple', original || ' ' || english)) STORED);
CREATE INDEX chunk_terms_document ON chunk_terms USING gin (document);
CREATE TABLE sentence_terms (
    recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
    start DOUBLE PRECISION NOT NULL, "end" DOUBLE PRECISION NOT NULL, terms TEXT NOT NULL);
CREATE INDEX sentence_terms_by_recording ON sentence_terms(recording_id, start);
CREATE TABLE vectors (
    chunk_id BIGINT NOT NULL REFERENCES chunks(id) ON DELETE CASCADE, view SMALLINT NOT NULL,
    embedding vector({dimension}) NOT NULL, PRIMARY KEY (chunk_id, view));
CREATE INDEX vectors_coarse ON vectors USING hnsw (embedding vector_ip_ops) WITH (m = {m}, ef_construction = 64)
    WHERE view < 2;
CREATE OR REPLACE FUNCTION instr(text, text) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT strpos($1, $2)';
CREATE OR REPLACE FUNCTION casefold(text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT lower($1)';
"""
# One writer at a time per schema, across processes: held until the transaction ends.
_LOCK_KEY = "hashtextextended('talksearch ' || current_schema(), 0)"
_WRITE_LOCK = f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"
# pgvector's graph walk returns at most ef_search rows, and accepts at most 1000.
_MAX_EF = 1000


def _why(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@lru_cache(maxsize=512)
def _dialect(sql: str) -> str:
    """The catalog's ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Row(tuple):
    """A result row read as ``sqlite3.Row`` is, by position or by column name: the shared catalog
    queries do both."""

    names: dict[str, int] = {}

    def __getitem__(self, key):
        return tuple.__getitem__(self, self.names[key] if isinstance(key, str) else key)

    def keys(self) -> list[str]:
        return list(self.names)


def _row_factory(cursor: psycopg.Cursor):
    names = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values) -> _Row:
        row = _Row(values)
        row.names = names
        return row

    return make


class _VectorDumper(Dumper):
    """numpy vectors sent in pgvector's binary form (dimension, unused, big-endian float32s)."""

    format = Format.BINARY

    def dump(self, obj: np.ndarray) -> bytes:
        values = np.asarray(obj, dtype=">f4").reshape(-1)
        return struct.pack(">HH", len(values), 0) + values.tobytes()


class _VectorLoader(Loader):
    format = Format.BINARY

    def load(self, data) -> np.ndarray:
        return np.frombuffer(bytes(data), dtype=">f4", offset=4).astype(np.float32)


class _Connections:
    """Connections to one database for this process's threads. A statement takes an idle
    connection (or opens one) and gives it back; a transaction keeps its connection for its
    thread, so reads inside it see its own writes. psycopg's pool would add a maintenance thread
    per store; this needs none."""

    KEEP = 8  # idle connections kept open

    def __init__(self, uri: str):
        self.uri = uri
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._vector_oid: int | None = None

    def open(self) -> psycopg.Connection:
        options = {} if "connect_timeout" in self.uri else {"connect_timeout": 10}
        try:
            conn = psycopg.connect(self.uri, autocommit=True, row_factory=_row_factory, **options)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {shown(self.uri)}: {_why(exc)}") from None
        if self._vector_oid is not None:
            self._adapt(conn)
        return conn

    def _adapt(self, conn: psycopg.Connection) -> None:
        dumper = type("VectorDumper", (_VectorDumper,), {"oid": self._vector_oid})
        conn.adapters.register_dumper(np.ndarray, dumper)
        conn.adapters.register_loader(self._vector_oid, _VectorLoader)

    def know_vectors(self, conn: psycopg.Connection) -> None:
        """Learn the ``vector`` type (once the extension exists) and adapt numpy arrays to it."""
        info = TypeInfo.fetch(conn, "vector")
        if info is None:
            raise StoreError(f"the database at {shown(self.uri)} has no pgvector 'vector' type")
        self._vector_oid = info.oid
        self._adapt(conn)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[psycopg.Connection]:
        current = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self.open()
        try:
            yield conn
        except psycopg.OperationalError as exc:  # the server went away or refused: one line, not a traceback
            raise StoreError(f"PostgreSQL at {shown(self.uri)}: {_why(exc)}") from None
        finally:
            self._give_back(conn)

    def _give_back(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self.KEEP:
                self._idle.append(conn)
                return
        conn.close()

    @contextlib.contextmanager
    def transaction(self, write: bool = True) -> Iterator[psycopg.Connection]:
        """One transaction on this thread's connection (nested ones join it). A writing one
        first waits for the schema's write lock."""
        if getattr(self._local, "connection", None) is not None:
            yield self._local.connection
            return
        with self() as conn:
            self._local.connection = conn
            try:
                with conn.transaction():
                    if write:
                        conn.execute(_WRITE_LOCK)
                    yield conn
            finally:
                self._local.connection = None

    def rows(self, sql: str, args: tuple | dict = (), binary: bool = False) -> list:
        with self() as conn:
            cursor = conn.execute(sql, args, binary=binary)
            return cursor.fetchall() if cursor.description else []


class PgRecords(SqlRecords):
    """The catalog's queries on PostgreSQL."""

    def __init__(self, connections: _Connections):
        self.connections = connections

    def _rows(self, sql: str, args: tuple = ()) -> list:
        return self.connections.rows(_dialect(sql), args)

    def _many(self, sql: str, rows: list[tuple]) -> None:
        if rows:
            with self.connections() as conn:
                conn.cursor().executemany(_dialect(sql), rows)

    def transaction(self) -> contextlib.AbstractContextManager:
        return self.connections.transaction()


class PgVectors:
    """The vector role: whole-chunk candidates from the HNSW index, every view rescored exactly."""

    def __init__(self, connections: _Connections, dimension: int, settings: VectorSettings):
        self.connections = connections
        self.dimension = dimension
        self.settings = settings

    def write(self, views: list[View], vectors: np.ndarray) -> None:
        """Views carrying chunk ids, replacing any vectors those chunks had. Call inside a transaction."""
        if vectors.shape[1:] != (self.dimension,):
            raise ValueError(f"vectors are {vectors.shape[1:]}-d, the library holds {self.dimension}-d")
        with self.connections() as conn, conn.cursor() as cursor:
            cursor.execute("DELETE FROM vectors WHERE chunk_id = ANY(%s)", (sorted({v.chunk for v in views}),))
            cursor.executemany("INSERT INTO vectors (chunk_id, view, embedding) VALUES (%s, %s, %b)",
                               [(v.chunk, v.view, np.asarray(vector, dtype=np.float32)) for v, vector in zip(views, vectors)])

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float, int]]:
        """Best ``k`` chunks: (chunk id, score of its best view, that view); ``allowed`` as in the embedded store."""
        if allowed is not None and len(allowed) == 0:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        args = {"q": query, "allowed": None if allowed is None else allowed.tolist()}
        rescore = ("SELECT DISTINCT ON (chunk_id) chunk_id, -(embedding <#> %(q)b) AS score, view FROM vectors "
                   "WHERE chunk_id = ANY({}) ORDER BY chunk_id, embedding <#> %(q)b, view")
        with self.connections.transaction(write=False) as conn:
            if allowed is not None and len(allowed) <= self.settings.exact_subset:
                rows = conn.execute(rescore.format("%(allowed)s"), args).fetchall()
            else:
                fetch = self.settings.coarse_factor * k
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true)",
                             (str(min(_MAX_EF, max(fetch, self.settings.ef_search))),
                              "off" if allowed is None else "relaxed_order"))
                coarse = ("SELECT chunk_id FROM vectors WHERE view < 2 "
                          + ("" if allowed is None else "AND chunk_id = ANY(%(allowed)s) ")
                          + "ORDER BY embedding <#> %(q)b LIMIT %(fetch)s")
                rows = conn.execute(f"WITH coarse AS MATERIALIZED ({coarse}) "
                                    + rescore.format("ARRAY(SELECT chunk_id FROM coarse)"), {**args, "fetch": fetch}).fetchall()
        found = sorted(((int(c), float(s), int(v)) for c, s, v in rows), key=lambda item: (-item[1], item[0]))
        return found[:k]

    def views(self, chunk_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(view numbers, float32 vectors) of one chunk."""
        rows = self.connections.rows("SELECT view, embedding FROM vectors WHERE chunk_id = %s ORDER BY view",
                                     (chunk_id,), binary=True)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dimension), dtype=np.float32)
        return np.array([r[0] for r in rows], dtype=np.int64), np.stack([r[1] for r in rows])

    def chunk_ids(self) -> set[int]:
        return {r[0] for r in self.connections.rows("SELECT DISTINCT chunk_id FROM vectors")}

    def __len__(self) -> int:
        return self.connections.rows("SELECT COUNT(*) FROM vectors")[0][0]


class PgKeywords:
    """The keyword role: the analysed terms as a ``simple`` tsvector, ranked by ``ts_rank``."""

    # ts_rank's normalisation 1: divide by 1 + log(document length), as BM25 favours short chunks.
    NORMALISATION = 1

    def __init__(self, records: PgRecords):
        self.records = records

    def holding(self, ids: list[int], terms: list[str]) -> dict[int, set[str]]:
        return self.records.holding(ids, terms)

    def search(self, terms: list[str], k: int, filters: SearchFilters | None = None) -> list[tuple[int, float]]:
        """Chunks matching any term, best first: (chunk id, score)."""
        wanted = sorted(set(terms))
        if not wanted:
            return []
        filters = filters or SearchFilters()
        where, args = filter_sql(filters)
        joined = "" if filters.empty else "JOIN chunks ON chunks.id = chunk_terms.id JOIN recordings ON recordings.id = chunks.recording_id"
        # Each term quoted: the terms are already analysed, so to_tsquery only splits what the
        # simple parser splits in the documents too.
        query = " | ".join("'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in wanted)
        rows = self.records.connections.rows(
            _dialect(f"SELECT chunk_terms.id, ts_rank(document, query, {self.NORMALISATION}) AS score "
                     f"FROM chunk_terms {joined}, to_tsquery('simple', ?) AS query "
                     f"WHERE document @@ query AND {where} ORDER BY score DESC, chunk_terms.id LIMIT ?"),
            (query, *args, k))
        return [(r[0], float(r[1])) for r in rows]


class PgStore:
    """The store interface over one PostgreSQL database (or schema: give ``options=-csearch_path=…``)."""

    def __init__(self, uri: str, dimension: int, analyzer: Analyzer | None = None,
                 vector_settings: VectorSettings | None = None):
        self.location = uri
        self.analyzer = analyzer or Analyzer()
        settings = vector_settings or VectorSettings()
        self.connections = _Connections(uri)
        self._prepare(dimension, settings)
        self.records = PgRecords(self.connections)
        self.vectors = PgVectors(self.connections, dimension, settings)
        self.keywords = PgKeywords(self.records)

    def _prepare(self, dimension: int, settings: VectorSettings) -> None:
        """Create the tables (and the pgvector extension) in a new database, under the write lock
        so two processes opening it at once do not collide. The lock is the session's, taken
        before the transaction: a transaction begun before another's DDL committed can miss it
        in its catalog lookups ("relation already exists" when two processes created one library)."""
        exists = "SELECT to_regclass('vectors')"
        with self.connections() as conn:
            if conn.execute(exists).fetchone()[0] is None:
                conn.execute(f"SELECT pg_advisory_lock({_LOCK_KEY})")
                try:
                    with conn.transaction():
                        if conn.execute(exists).fetchone()[0] is None:
                            self._extension(conn)
                            conn.execute(_SCHEMA.format(dimension=int(dimension), m=int(settings.hnsw_m)))
                finally:
                    conn.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
            present = conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                                   "AND (table_name, column_name) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                                   ([t for t, _ in _UPGRADED], [c for _, c in _UPGRADED])).fetchone()[0]
            if present < len(_UPGRADED):
                conn.execute(f"SELECT pg_advisory_lock({_LOCK_KEY})")
                try:
                    with conn.transaction():
                        conn.execute(_UPGRADES)
                finally:
                    conn.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
            self.connections.know_vectors(conn)

    def _extension(self, conn: psycopg.Connection) -> None:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise StoreError(f"the database at {shown(self.location)} lacks the pgvector extension and it cannot be added "
                             f"({_why(exc)}): run CREATE EXTENSION vector there as its owner or a superuser") from None

    # -- writing: each one transaction under the write lock -----------------------------------
    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk],
            views: list[View], vectors: np.ndarray) -> None:
        """``views[i].chunk`` is a position in ``chunks``. The analysis runs before the
        transaction, so the write lock is held only for the inserts."""
        terms, sentences = chunk_terms(self.analyzer, chunks), sentence_terms(self.analyzer, transcript)
        with self.records.transaction():
            self._put(recording, transcript, chunks, terms, sentences, views, vectors)

    def _put(self, recording: Recording, transcript: Transcript, chunks: list[Chunk], terms: list[tuple[str, str]],
             sentences: list[tuple[float, float, str]], views: list[View], vectors: np.ndarray) -> None:
        ids = self.records.add(recording, transcript, chunks)
        self.records.set_terms(ids, terms)
        self.records.set_sentence_terms(recording.id, sentences)
        stored = [replace(view, chunk=ids[view.chunk]) for view in views]
        self.records.set_views(ids, *view_rows(stored, vectors))
        self.vectors.write(stored, vectors)

    def add_vectors(self, views: list[View], vectors: np.ndarray) -> None:
        """Vectors for chunks already stored (views carry chunk ids): what repair re-embeds."""
        with self.records.transaction():
            self.records.set_views(sorted({v.chunk for v in views}), *view_rows(views, vectors))
            self.vectors.write(views, vectors)

    def delete(self, recording_id: str) -> bool:
        """Everything hanging off the recording goes with it (foreign keys cascade)."""
        with self.records.transaction():
            if self.records.recording(recording_id) is None:
                return False
            self.records.delete(recording_id)
        return True

    def update(self, recording_id: str, changes: dict[str, str | None]) -> None:
        """A corrected language reaches keyword filters at once: they join the chunks' language."""
        self.records.update(recording_id, changes)

    def replace_vectors(self, batches, dimension: int) -> None:
        """Every vector swapped for new ones in one commit; searches see the old ones until then.
        The table's vectors have one size: a model of another needs a new database."""
        if dimension != self.vectors.dimension:
            raise StoreError(f"this database holds {self.vectors.dimension}-d vectors and the model makes {dimension}-d: "
                             "re-embed into a new library folder, then 'talksearch migrate' it into a new database")
        with self.records.transaction() as conn:
            conn.execute("DELETE FROM vectors")
            for chunk_ids, views, vectors in batches:
                self.records.set_views(chunk_ids, *view_rows(views, vectors))
                self.vectors.write(views, vectors)

    def maintain(self) -> None:
        """PostgreSQL keeps the HNSW and GIN indexes current itself; fresh statistics keep the
        planner on them as the library grows."""
        with self.connections() as conn:
            conn.execute("ANALYZE vectors, chunk_terms, chunks")

    # -- checking and repairing ---------------------------------------------------------------
    def _unembedded(self) -> list[int]:
        return [r[0] for r in self.connections.rows(
            "SELECT id FROM chunks WHERE NOT EXISTS (SELECT 1 FROM vectors WHERE vectors.chunk_id = chunks.id) ORDER BY id")]

    def needs_repair(self) -> bool:
        return bool(self._unembedded() or self.records.unanalysed() or self.records.terms_outdated())

    def check(self) -> list[Finding]:
        """Chunks without vectors or without keyword terms (a write from before a crash cannot
        leave them: it is one transaction; a copy made by other means can)."""
        findings = []
        if missing := self._unembedded():
            findings.append(Finding(f"{len(missing)} chunks have no vectors", "re-embed them from their stored text"))
        if unanalysed := self.records.unanalysed():
            findings.append(Finding(f"{len(unanalysed)} chunks have no keyword terms", "analyse their text again"))
        if self.records.terms_outdated():
            findings.append(Finding("keyword terms were made by an older analysis", "analyse every chunk's text again"))
        return findings

    def repair(self) -> list[int]:
        """Analyse chunks lacking terms, or every chunk and sentence when the terms were made by an
        older analysis; returns the chunks without vectors, for the caller to re-embed."""
        with self.records.transaction():
            if analyse_terms(self.records, self.analyzer, contextlib.nullcontext):
                self.records.set_meta("keyword_analysis", ANALYSIS)
        return self._unembedded()

    # -- reading ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        return self.records.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.records.set_meta(key, value)

    def counts(self) -> dict[str, float]:
        return {**self.records.counts(), "vectors": len(self.vectors)}


def stored_dimension(uri: str) -> int | None:
    """The vector size the database's library was built with (None for a new one)."""
    connections = _Connections(uri)
    with connections() as conn:
        if conn.execute("SELECT to_regclass('meta')").fetchone()[0] is None:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'dimension'").fetchone()
    return int(row[0]) if row else None


def migrate(folder: Path, uri: str) -> dict[str, float]:
    """Copy the library in ``folder`` into the empty database at ``uri``, vectors and analysed
    terms included (nothing is embedded or analysed again), in one transaction: the counts are
    compared before it commits, and a failure leaves the database as it was."""
    if not (folder / "catalog.sqlite").is_file():
        raise StoreError(f"{folder} is not a talksearch library (no catalog.sqlite)")
    dimension = folder_dimension(folder)
    if dimension is None:
        raise StoreError(f"{folder} holds no vectors yet: nothing to migrate")
    source = EmbeddedStore(folder, dimension)
    if source.needs_repair():
        raise StoreError(f"{folder} has damaged or missing vectors: run 'talksearch check --repair' on it first")
    target = PgStore(uri, dimension, source.analyzer)
    if target.records.recordings():
        raise StoreError(f"the database at {shown(uri)} already holds a library: migrate into an empty one")
    with target.records.transaction() as conn:
        # The search graph is built once over the copied vectors, as pgvector advises for a bulk
        # load: grown row by row, it held the copy of a 100k-chunk library for over 15 minutes.
        graph = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                             "AND indexname = 'vectors_coarse'").fetchone()[0]
        conn.execute("DROP INDEX vectors_coarse")
        for key, value in source.records.meta().items():
            if key != "generation":  # the embedded store's change counter
                target.set_meta(key, value)
        for recording in source.records.recordings():
            _copy(source, target, recording)
        conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
        conn.execute(graph)
        copied, expected = target.counts(), source.counts()
        if any(copied[name] != expected[name] for name in ("recordings", "chunks", "vectors")) \
                or target.records.count_terms() != source.records.count_terms():
            raise StoreError(f"the copy holds {copied}, the library {expected}: nothing was committed")
    target.maintain()
    return copied


def _copy(source: Store, target: PgStore, recording: Recording) -> None:
    """One recording with its chunks' stored terms, window spans and vectors."""
    chunks = source.records.chunks_of(recording.id)
    terms = {row[0]: (row[3], row[4]) for row in source.records.keyword_docs(recording.id)}
    views, vectors = [], []
    for position, chunk in enumerate(chunks):
        numbers, embedded = source.vectors.views(chunk.id)
        spans = source.records.window_spans([(chunk.id, int(n)) for n in numbers])
        views += [View(position, int(n), *spans.get((chunk.id, int(n)), (chunk.start, chunk.end)), "", "") for n in numbers]
        vectors.append(embedded)
    target._put(recording, source.records.transcript(recording.id), [replace(c) for c in chunks], [terms[c.id] for c in chunks],
                source.records.sentence_rows(recording.id), views,
                np.concatenate(vectors) if vectors else np.zeros((0, target.vectors.dimension), dtype=np.float32))
