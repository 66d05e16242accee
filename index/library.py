"""The library facade: what ingest hands over is embedded and stored; queries come back as hits.

It wires the parts, each in its own module: ``indexing`` (views, embeddings, model identity),
``retrieval`` (one retriever per ranking mode, filters pushed down), ``clips`` (the seconds and
words of each hit), over a ``store`` chosen by ``open_store``.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ingest.records import Chunk, Metadata, Recording, Transcript

from .catalog import Speaker
from .centering import NEUTRAL, LanguageCentering
from .clips import ClipShaper, Hit
from .embedder import Embedder
from .indexing import Indexer, LibraryError, UnknownRecording, chunk_views
from .quotes import quoted
from .ranking import FusionSettings, SearchFilters
from .retrieval import Candidates, DenseRetriever, HybridRetriever, KeywordRetriever, QuoteRetriever, top
from .backends import open_store, stored_dimension
from .store import Finding, Store, shown
from .vectors import VectorSettings, View

SEARCH_MODES = ("hybrid", "dense", "lexical")
# Chunks (best by meaning and words) looked through for a quote no transcript holds exactly.
NEAR_POOL = 50
# Chunks each ranking hands to fusion for k hits: at least MIN_POOL, POOL_PER_HIT per hit. The
# vector store rescores every view of twice as many candidates, which is what finds the best
# sentence windows: recall@10 against exact search on real e5 vectors (benchmarks/scale.py
# ``real_recall``, ef 512) at k=10 with a pool of 200 / 100 / 50: 0.96 / 0.885 / 0.79. A pool
# of 50 saved ~3 ms of a 100k-chunk search (in one process) but loses that recall, so it stays.
MIN_POOL, POOL_PER_HIT = 100, 20
log = logging.getLogger(__name__)


def candidate_pool(k: int) -> int:
    """How many chunks the vector and keyword rankings each return for a search of k hits."""
    return max(MIN_POOL, POOL_PER_HIT * k)


@dataclass
class SearchRequest:
    """One search as either front end asks it (the CLI's flags, the HTTP query or body)."""

    query: str
    k: int = 10
    mode: str = "hybrid"
    filters: SearchFilters = field(default_factory=SearchFilters)


def graph_settings(embedder: Embedder, dimension: int, settings: VectorSettings | None = None) -> VectorSettings | None:
    """The vector settings a library of ``dimension``-d vectors opens with: with a companion model,
    the search graph holds the main model's part of each vector only (the README has what that
    keeps and costs). A companion other than USE is loaded here to learn its size."""
    companion = embedder.companion
    if companion is None or (settings is not None and settings.graph_dimension is not None):
        return settings
    own = dimension - companion.dimension
    if own <= 0:  # the library holds one model's vectors: a reindex is about to give it both
        own = embedder.dimension - companion.dimension
    return replace(settings or VectorSettings(), graph_dimension=own)


class Library:
    """One library (a folder, or a store location) opened with one embedding model."""

    def __init__(self, location: Path | str, embedder: Embedder, store: Store | None = None, fusion: FusionSettings | None = None,
                 vectors: VectorSettings | None = None):
        self.location = location  # a folder, or a postgresql:// URI
        self.where = shown(location)  # for messages: a URI without its password
        self.vector_settings = vectors
        self.embedder = embedder
        self.fusion = fusion or FusionSettings()
        self.centering = LanguageCentering(embedder)
        self._store = store
        self._opening = threading.Lock()  # the API's request and job threads may both open it first
        # Looks keywords up while a hybrid search embeds its query; one thread per concurrent search.
        self._helper = ThreadPoolExecutor(max_workers=8, thread_name_prefix="talksearch-keywords")

    @property
    def store(self) -> Store:
        """Opened on first use: listing or deleting never needs the embedding model loaded,
        unless the library is new and its vector size is not yet known, or a crash or a damaged
        file left chunks without vectors (they are re-embedded here, from their stored text)."""
        return self._open(repair=True)

    def _open(self, repair: bool) -> Store:
        with self._opening:
            if self._store is None:
                dimension = stored_dimension(self.location) or self.embedder.dimension
                store = open_store(self.location, dimension, vector_settings=graph_settings(self.embedder, dimension, self.vector_settings))
                if repair and store.needs_repair():
                    for finding in self._repair(store):
                        log.warning("library %s: %s (%s)", self.where, finding.problem, finding.repair or "left as it is")
                self._store = store
        return self._store

    @property
    def indexer(self) -> Indexer:
        return Indexer(self.store, self.centering, self.where)

    def _repair(self, store: Store) -> list[Finding]:
        findings = store.check()
        missing = store.repair()
        if missing:
            Indexer(store, self.centering, self.where).restore(missing)
        return findings

    def check(self, repair: bool = False) -> list[Finding]:
        """What is damaged or inconsistent (and, with ``repair``, fix what can be fixed)."""
        store = self._open(repair=False)
        return self._repair(store) if repair else store.check()

    def warm_up(self) -> None:
        """Load what a search needs before the first one comes: the query embedder, the keyword
        analysers and each language's query mean."""
        self.embedder.warm_up()
        self.store.analyzer.warm_up()
        for language in NEUTRAL:
            self.centering.mean("query", language)

    # -- writing ----------------------------------------------------------------------------
    def check_model(self) -> None:
        self.indexer.check_model()

    def add(self, recording: Recording, transcript: Transcript, chunks: list[Chunk],
            embedded: tuple[list[View], np.ndarray] | None = None) -> None:
        self.indexer.add(recording, transcript, chunks, embedded)

    def delete(self, ref: str) -> Recording:
        recording = self.resolve(ref)
        self.store.delete(recording.id)
        return recording

    def update(self, recording_id: str, meta: Metadata) -> Recording:
        """Set the given metadata fields of a recording; the others stay as they are."""
        self.store.update(recording_id, meta.given())
        return self.store.records.recording(recording_id)

    def set_speakers(self, recording_id: str, voices: dict[str, np.ndarray], suggested: dict[str, str]) -> None:
        """A recording's voices (label → mean embedding) and the names the registry suggests."""
        self.store.records.set_speakers(recording_id, voices, suggested)

    def rename_speaker(self, recording_id: str, label: str, name: str | None) -> None:
        self.store.records.rename_speaker(recording_id, label, name)

    def remember(self, key: str, value: str) -> None:
        """Note something about how the library was built (e.g. the whisper model)."""
        self.store.set_meta(key, value)

    def reindex(self) -> int:
        return self.indexer.reindex()

    def maintain(self) -> None:
        """Merge vector segments and train the approximate index when due (after writes)."""
        self.store.maintain()

    # -- reading ----------------------------------------------------------------------------
    def recordings(self) -> list[Recording]:
        return self.store.records.recordings()

    def recording(self, recording_id: str) -> Recording | None:
        """Exact id only (see ``resolve`` for prefixes and titles)."""
        return self.store.records.recording(recording_id)

    def by_hash(self, digest: str) -> Recording | None:
        return self.store.records.by_hash(digest)

    def transcript(self, recording_id: str) -> Transcript:
        return self.store.records.transcript(recording_id)

    def speakers(self, recording_id: str) -> list[Speaker]:
        return self.store.records.speakers(recording_id)

    def speaker_names(self, recording_ids: set[str]) -> dict[tuple[str, str], str]:
        return self.store.records.speaker_names(recording_ids)

    def voice_registry(self) -> dict[str, np.ndarray]:
        """Every named voice in the library (name → mean voice), to suggest names for new ones."""
        return self.store.records.registry()

    def is_empty(self) -> bool:
        """No chunk to search (cheap: never counts the library)."""
        return not self.store.records.has_chunks()

    def counts(self) -> dict[str, float]:
        """Recordings, chunks and seconds of audio."""
        return self.store.counts()

    def resolve(self, ref: str) -> Recording:
        """A recording by id, unique id prefix or exact title."""
        found = self.store.records.find(ref)
        if not found:
            raise UnknownRecording(f"no recording {ref!r} in {self.where} (see 'talksearch list')")
        if len(found) > 1:
            raise LibraryError(f"{ref!r} matches {len(found)} recordings: {', '.join(r.id for r in found[:5])}; give more of the id")
        return found[0]

    def search(self, query: str, k: int = 10, filters: SearchFilters | None = None, mode: str = "hybrid") -> list[Hit]:
        """Best hits for a query. A query in double quotes is an exact-phrase search."""
        if mode not in SEARCH_MODES:
            raise LibraryError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
        query = " ".join(query.split())
        phrase = quoted(query)
        if not (phrase or query.strip('"“”«» ')):
            raise LibraryError("empty query")
        if k < 1:
            raise LibraryError("k must be at least 1")
        if not self.store.records.has_chunks():
            raise LibraryError(f"library {self.where} is empty: ingest or import recordings first")
        self.check_model()
        filters = filters or SearchFilters()
        store = self.store
        keywords = KeywordRetriever(store)
        shaper = ClipShaper(store)
        if phrase:
            quotes = QuoteRetriever(store, keywords)
            found, approximate = quotes(phrase, k, filters), False
            if not found:  # recognition may have misspelled it: the nearest spellings, marked as such
                asked = Candidates(phrase, self.centering.query, filters, pool=NEAR_POOL)
                nearest = HybridRetriever(DenseRetriever(store), keywords, self.fusion, self._helper)(asked)
                found, approximate = quotes.near(phrase, nearest, k), True
            recordings = store.records.recordings_by_id({c.recording_id for c, _, _ in found})
            hits = [shaper.hit(chunk, passage, shaper.sentences(chunk, passage), score, recordings[chunk.recording_id], span,
                               approximate) for chunk, score, span in found for passage in [shaper.passage(chunk)]]
            return shaper.highlight(hits, set(store.analyzer.keys(phrase)))
        candidates = Candidates(query, None if mode == "lexical" else self.centering.query, filters, pool=candidate_pool(k))
        dense = DenseRetriever(store)
        retrieve = {"dense": dense, "lexical": keywords, "hybrid": HybridRetriever(dense, keywords, self.fusion, self._helper)}[mode]
        return shaper.shape(top(retrieve(candidates), k), query, candidates.vector)


__all__ = ["Library", "LibraryError", "UnknownRecording", "Hit", "SEARCH_MODES", "SearchRequest", "chunk_views"]
