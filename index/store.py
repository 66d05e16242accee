"""The library's storage: three roles behind small interfaces, chosen by configuration.

- ``Records``: recordings, transcripts, chunks, window spans and metadata, filters resolved in SQL.
- ``Vectors``: chunk vectors; ``search`` takes the chunk ids a filter allows.
- ``Keywords``: analysed terms with BM25; ``search`` takes the filters themselves.

``Store`` composes them and owns what spans roles: a write is one transaction (vector files are
written first but only become live with the records' commit), a delete buries vectors as
tombstones, and ``maintain`` merges segments and trains the approximate index off the request
path. ``open_store`` is the one factory: a folder gives the embedded SQLite + FAISS store; a
server-based store (PostgreSQL + pgvector) implements the same roles.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, ContextManager, Protocol
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ingest.align import render
from ingest.chunking import sentences
from core.errors import TalksearchError
from ingest.records import Chunk, Recording, Transcript

from .catalog import Catalog, SqlRecords, StoredSentence
from .keywords import TantivyKeywords
from .lexical import ANALYSIS, Analyzer
from .ranking import SearchFilters
from .vectors import ENGLISH, ORIGINAL, SegmentedVectors, VectorSettings, View, vector_id, write_segment
from .writelock import WriterLock

log = logging.getLogger(__name__)


class Records(Protocol):
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def recordings(self) -> list[Recording]: ...
    def recording(self, recording_id: str) -> Recording | None: ...
    def recordings_by_id(self, ids: set[str]) -> dict[str, Recording]: ...
    def find(self, ref: str) -> list[Recording]: ...
    def by_hash(self, content_hash: str) -> Recording | None: ...
    def transcript(self, recording_id: str) -> Transcript | None: ...
    def passage(self, recording_id: str, start: float, end: float) -> Transcript: ...
    def passages(self, spans: list[tuple[str, float, float]]) -> list[Transcript]: ...
    def chunks(self, ids: list[int]) -> dict[int, Chunk]: ...
    def chunks_of(self, recording_id: str) -> list[Chunk]: ...
    def chunk_ids(self, filters: SearchFilters) -> np.ndarray: ...
    def has_chunks(self) -> bool: ...
    def window_spans(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[float, float]]: ...
    def sentence_terms(self, recording_id: str, start: float, end: float) -> dict[tuple[float, float], StoredSentence]: ...
    def counts(self) -> dict[str, float]: ...


class Vectors(Protocol):
    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float, int]]: ...
    def views(self, chunk_id: int) -> tuple[np.ndarray, np.ndarray]: ...
    def __len__(self) -> int: ...


class Keywords(Protocol):
    def holding(self, ids: list[int], terms: list[str]) -> dict[int, set[str]]: ...
    def search(self, terms: list[str], k: int, filters: SearchFilters | None = None) -> list[tuple[int, float]]: ...


class Store(Protocol):
    """What the library needs from storage: the three roles, and the writes that span them."""

    analyzer: Analyzer  # the keyword analysis the store indexes with; search highlights with the same
    records: Records
    vectors: Vectors
    keywords: Keywords

    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk],
            views: list[View], vectors: np.ndarray) -> None: ...
    def delete(self, recording_id: str) -> bool: ...
    def update(self, recording_id: str, changes: dict[str, str | None]) -> None: ...
    def replace_vectors(self, batches, dimension: int) -> None: ...
    def add_vectors(self, views: list[View], vectors: np.ndarray) -> None: ...
    def maintain(self) -> None: ...
    def needs_repair(self) -> bool: ...
    def check(self) -> list[Finding]: ...
    def repair(self) -> list[int]: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def counts(self) -> dict[str, float]: ...


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class StoreError(TalksearchError):
    """The store cannot be opened or used as configured."""


@dataclass(frozen=True)
class Finding:
    """One thing ``check`` found wrong: what, and what ``repair`` does about it ("" if nothing can)."""

    problem: str
    repair: str


class EmbeddedStore:
    """``catalog.sqlite`` (records and keyword terms), ``keywords/`` (tantivy) and ``vectors/``
    (segment files) in one folder. The catalog is the source of truth; the keyword index and
    the vectors' coarse index are derived from it and rebuilt when found damaged."""

    def __init__(self, folder: Path, dimension: int, analyzer: Analyzer | None = None,
                 vector_settings: VectorSettings | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.analyzer = analyzer or Analyzer()
        self.lock = WriterLock(folder / "write.lock")
        self.records = self.catalog = self._open_catalog(folder / "catalog.sqlite")
        self.keywords = TantivyKeywords(folder / "keywords", self.catalog)
        self.vectors = SegmentedVectors(folder / "vectors", dimension, self.catalog, vector_settings)
        self._settle()

    def _open_catalog(self, path: Path) -> Catalog:
        """Created under the writer lock: two processes creating one library at once collided on
        SQLite's switch to WAL ("database is locked"). One that finds it being created waits."""
        try:
            try:
                if not path.exists():
                    with self.lock.held():
                        return Catalog(path)
                return Catalog(path)
            except sqlite3.OperationalError:  # another process is creating it: open once that is done
                with self.lock.held():
                    return Catalog(path)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open the catalog {path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"the catalog {path} is damaged ({exc}): restore it from a backup "
                             "(it is the library's source of truth; everything else is rebuilt from it)") from exc

    def _settle(self) -> None:
        """Bring derived data up to date at open, under the writer lock: terms a library made by
        an older version lacks or made another way, a keyword index that missed a commit, files of
        a crashed write."""
        if not (self.catalog.terms_outdated() or self.catalog.unanalysed() or self.catalog.without_sentence_terms()
                or self.keywords.stale() or self.vectors.strays()):
            return
        with self.lock.held():
            if self.catalog.terms_outdated():
                log.warning("library %s: keyword terms made by an older analysis are made again (once)", self.folder)
            outdated = analyse_terms(self.catalog, self.analyzer, self.catalog.transaction)
            if outdated or self.keywords.stale():  # the same number of documents, other terms
                self.keywords.rebuild()
            if outdated:
                with self.catalog.transaction():
                    self.catalog.set_meta("keyword_analysis", ANALYSIS)
            for path in self.vectors.strays():
                path.unlink(missing_ok=True)

    def _bump(self) -> None:
        """Tell readers in this and other processes that the library changed (inside a transaction)."""
        self.catalog.set_meta("generation", str(int(self.catalog.get_meta("generation") or 0) + 1))

    def _segment(self, views: list[View], vectors: np.ndarray, dimension: int | None = None) -> tuple[str, int]:
        """Write views carrying chunk ids as a new segment (live once a commit lists it), each
        chunk's views in consecutive rows; its vectors of the store's size, or of ``dimension``
        (re-embedding with another model)."""
        order = sorted(range(len(views)), key=lambda i: (views[i].chunk, views[i].view))
        ids = np.asarray([vector_id(views[i].chunk, views[i].view) for i in order], dtype=np.int64)
        if dimension is None:
            return self.vectors.write(ids, vectors[order])
        return write_segment(self.folder / "vectors", dimension, [(ids, vectors[order])], len(ids))

    # -- writing: each under the writer lock --------------------------------------------------
    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk],
            views: list[View], vectors: np.ndarray) -> None:
        """``views[i].chunk`` is a position in ``chunks``; it becomes the chunk's id here.
        Nothing is visible until the one commit at the end; a failure leaves no trace."""
        segment = None
        with self.lock.held():
            try:
                with self.catalog.transaction():
                    ids = self.catalog.add(recording, transcript, chunks)
                    terms = chunk_terms(self.analyzer, chunks)
                    self.catalog.set_terms(ids, terms)
                    self.catalog.set_sentence_terms(recording.id, sentence_terms(self.analyzer, transcript))
                    stored = [replace(view, chunk=ids[view.chunk]) for view in views]
                    self.catalog.set_views(ids, *view_rows(stored, vectors))
                    segment = self._segment(stored, vectors)
                    self.catalog.set_segments(dict([segment]), [])
                    self._bump()
            except BaseException:
                if segment is not None:
                    self.vectors.discard(segment[0])
                raise
            self.vectors.refresh()
            self.keywords.add([(i, c.recording_id, c.language, *t) for i, c, t in zip(ids, chunks, terms)])

    def add_vectors(self, views: list[View], vectors: np.ndarray) -> None:
        """Vectors for chunks already in the catalog (views carry chunk ids): what repair
        re-embeds for chunks whose vectors were lost."""
        with self.lock.held():
            segment = self._segment(views, vectors)
            try:
                with self.catalog.transaction():
                    self.catalog.set_views(sorted({v.chunk for v in views}), *view_rows(views, vectors))
                    self.catalog.set_segments(dict([segment]), [])
                    self._bump()
            except BaseException:
                self.vectors.discard(segment[0])
                raise
            self.vectors.refresh()

    def delete(self, recording_id: str) -> bool:
        with self.lock.held():
            with self.catalog.transaction():
                if self.catalog.recording(recording_id) is None:
                    return False
                ids = self.catalog.delete(recording_id)
                self.catalog.bury(ids)
                self._bump()
            self.vectors.refresh()
            self.keywords.remove(ids)
        return True

    def update(self, recording_id: str, changes: dict[str, str | None]) -> None:
        """Edit a recording's metadata; a corrected language reaches its chunks' keyword entries."""
        with self.lock.held():
            self.catalog.update(recording_id, changes)
            if "language" in changes:
                docs = self.catalog.keyword_docs(recording_id)
                self.keywords.remove([doc[0] for doc in docs])
                self.keywords.add(docs)

    def replace_vectors(self, batches, dimension: int) -> None:
        """Swap every vector in the store for new ones in one commit (re-embedding with another
        model, whose vectors may be of another size): ``batches`` yields (chunk ids, views
        carrying chunk ids, vectors) per recording. Until the commit, searches use the old ones;
        a saved search graph of the old segments is not used again (see ``SegmentedVectors``)."""
        written: list[tuple[str, int]] = []
        with self.lock.held():
            try:
                for chunk_ids, views, vectors in batches:
                    with self.catalog.transaction():
                        self.catalog.set_views(chunk_ids, *view_rows(views, vectors))
                    written.append(self._segment(views, vectors, dimension))
                old = list(self.catalog.segments())
                with self.catalog.transaction():
                    self.catalog.set_segments(dict(written), old)
                    self.catalog.set_meta("dimension", str(dimension))
                    self._bump()
            except BaseException:
                self.vectors.discard(*(name for name, _ in written))
                raise
            if dimension == self.vectors.dimension:
                self.vectors.refresh()
            else:
                self.vectors = SegmentedVectors(self.folder / "vectors", dimension, self.catalog, self.vectors.settings)
            self.vectors.discard(*old)
            (self.folder / "vectors.faiss").unlink(missing_ok=True)  # a library from before segments

    def maintain(self) -> None:
        """Merge small segments (dropping deleted chunks' rows) and train the approximate index
        when due. Run after writes, off the request path; searches go on meanwhile."""
        with self.lock.held():
            for names in self.vectors.merge_plan():
                merged = self.vectors.merged(names)
                try:
                    with self.catalog.transaction():
                        self.catalog.set_segments(dict([merged]), names)
                        self._bump()
                except BaseException:
                    self.vectors.discard(merged[0])
                    raise
                self.vectors.refresh()
                self.vectors.discard(*names)
                self.vectors.merged_away(names)
            self.vectors.train_if_due()

    # -- checking and repairing ---------------------------------------------------------------
    def needs_repair(self) -> bool:
        """Cheap, at open: unreadable vector files, or catalog chunks and vectors that disagree."""
        self.vectors.refresh()
        return bool(self.vectors.damaged) or self.catalog.counts()["chunks"] != self.vectors.live_chunks

    def _disagreement(self) -> tuple[np.ndarray, np.ndarray]:
        """(catalog chunks without vectors, vectors of chunks the catalog does not hold)."""
        self.vectors.refresh()
        listed = self.catalog.chunk_ids(SearchFilters())
        embedded = np.fromiter(sorted(self.vectors.chunk_ids()), dtype=np.int64)
        return np.setdiff1d(listed, embedded), np.setdiff1d(embedded, listed)

    def check(self) -> list[Finding]:
        """Everything that disagrees or cannot be read, each with what ``repair`` would do."""
        findings = [Finding(f"catalog: {problem}", "") for problem in self.catalog.integrity()]
        findings += [Finding(f"vector segment {name} is unreadable: {why}", "set it aside and re-embed its chunks")
                     for name, why in sorted(self.vectors.damaged.items())]
        missing, orphans = self._disagreement()
        if len(missing):
            findings.append(Finding(f"{len(missing)} chunks have no vectors", "re-embed them from their stored text"))
        if len(orphans):
            findings.append(Finding(f"{len(orphans)} chunks in the vector files are not in the catalog", "bury them"))
        if self.vectors.coarse_damage:
            findings.append(Finding(f"the saved search graph is unreadable: {self.vectors.coarse_damage}",
                                    "set it aside and build it again"))
        if self.keywords.stale():
            findings.append(Finding("the keyword index disagrees with the catalog", "rebuild it from the catalog's terms"))
        strays = self.vectors.strays()
        if strays:
            findings.append(Finding(f"{len(strays)} vector files belong to no committed write", "remove them"))
        return findings

    def repair(self) -> list[int]:
        """Fix what ``check`` finds that the store can fix alone; returns the chunks left without
        vectors, for the caller (who holds the embedding model) to re-embed with ``add_vectors``."""
        with self.lock.held():
            aside = self.folder / "damaged" / time.strftime("%Y%m%d-%H%M%S")
            damaged = sorted(self.vectors.damaged)
            if damaged:
                with self.catalog.transaction():
                    self.catalog.set_segments({}, damaged)
                    self._bump()
                self.vectors.set_aside(damaged, aside)
            if self.vectors.coarse_damage:
                self.vectors.forget_saved_graph(aside)
            missing, orphans = self._disagreement()
            if len(orphans):
                with self.catalog.transaction():
                    self.catalog.bury(orphans.tolist())
                    self._bump()
            if self.keywords.stale():
                self.keywords.rebuild()
            for path in self.vectors.strays():
                path.unlink(missing_ok=True)
            self.vectors.refresh()
            self.vectors.train_if_due()
        return missing.tolist()

    # -- reading (roles the facade uses directly) ---------------------------------------------
    def get_meta(self, key: str) -> str | None:
        return self.catalog.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.catalog.set_meta(key, value)

    def counts(self) -> dict[str, float]:
        return {**self.catalog.counts(), "vectors": len(self.vectors)}


def analyse_terms(records: SqlRecords, analyzer: Analyzer, step: Callable[[], ContextManager]) -> bool:
    """Make the keyword terms the records lack: every chunk's and sentence's when they were made by
    another analysis, else those of chunks and recordings stored without them; each write inside
    ``step()`` (a transaction of its own, or nothing within the caller's). True when every term was
    made again: the caller then stamps ``keyword_analysis``, once what derives from terms is rebuilt."""
    outdated = records.terms_outdated()
    if outdated:
        with step():
            records.forget_terms()
    missing = records.unanalysed()
    if missing:
        with step():
            records.set_terms([c.id for c in missing], chunk_terms(analyzer, missing))
    unplaced = records.without_sentence_terms()
    if unplaced:
        log.warning("the sentence terms of %d recordings are made (once; about a minute per 100,000 chunks)", len(unplaced))
    for recording_id in unplaced:
        with step():
            records.set_sentence_terms(recording_id, sentence_terms(analyzer, records.transcript(recording_id)))
    return outdated


def chunk_terms(analyzer: Analyzer, chunks: list[Chunk]) -> list[tuple[str, str]]:
    """Each chunk's analysed (original, English) terms, in one batch (Korean: 6 s → 1 s a talk)."""
    analysed = [" ".join(t.text for t in terms)
                for terms in analyzer.terms_many([text for c in chunks for text in (c.text, c.translation or "")])]
    return list(zip(analysed[::2], analysed[1::2]))


def sentence_terms(analyzer: Analyzer, transcript: Transcript) -> list[tuple[float, float, str, str]]:
    """Each sentence's terms, words and English rendering together, and where those of its words
    sit (``catalog.StoredSentence``): what places a hit on the sentence sharing the query's words
    and highlights them, read instead of analysed at query time (Korean analysis of ten hits'
    sentences cost ~50 ms a search)."""
    units = sentences(transcript.segments, 40.0)
    analysed = analyzer.terms_many([f"{u.text} {render(transcript.translation, u.start, u.end) or ''}" for u in units])
    return [(u.start, u.end, " ".join(t.text for t in terms), StoredSentence.places(terms, len(u.text)))
            for u, terms in zip(units, analysed)]


def view_rows(views: list[View], vectors: np.ndarray) -> tuple[list[tuple[int, int, float, float]], dict[int, float]]:
    """What the records keep about embedded views: the (chunk id, view, start, end) rows of the
    window and sentence views (whole-chunk views span the chunk), and per chunk with an English
    rendering the cosine of its two whole-chunk vectors, which says how far the rendering means
    what was said (see ``ranking.LOW_RENDERING``)."""
    rows = [(v.chunk, v.view, v.start, v.end) for v in views if v.view not in (ORIGINAL, ENGLISH)]
    whole = {(v.chunk, v.view): vector for v, vector in zip(views, vectors) if v.view in (ORIGINAL, ENGLISH)}
    confidence = {chunk: round(float(spoken @ english / (np.linalg.norm(spoken) * np.linalg.norm(english) or 1.0)), 4)
                  for (chunk, view), english in whole.items()
                  if view == ENGLISH and (spoken := whole.get((chunk, ORIGINAL))) is not None}
    return rows, confidence


def is_server(location: str | Path) -> bool:
    """A PostgreSQL URI rather than a library folder."""
    return str(location).startswith(POSTGRES_SCHEMES)


def shown(location: str | Path) -> str:
    """A store location for messages: a URI loses its password."""
    parts = urlsplit(str(location))
    if parts.password is None:
        return str(location)
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}" if parts.username else host))


def folder_dimension(folder: Path) -> int | None:
    """The vector size a library folder was built with (None for a new one), without opening it."""
    catalog_file = folder / "catalog.sqlite"
    if not catalog_file.exists():
        return None
    probe = Catalog(catalog_file)
    try:
        known = probe.get_meta("dimension")
    finally:
        probe.close()
    return int(known) if known else None
