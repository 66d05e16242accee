"""All settings in one place: defaults, overridden by TALKSEARCH_* environment variables,
overridden by command-line flags. Passed down explicitly; nothing reads the environment later.

Settings are nested by job, and each stage's own settings dataclass is its section, so every
default is written once, where the stage that uses it is: ``whisper`` (ingest/transcribe.py),
``embedder`` (index/embedder.py), ``chunking`` (ingest/chunking.py), ``fusion`` (index/ranking.py),
``vectors`` (index/vectors.py); what only the front ends use is here (``ingest``, ``ray``, ``http``).
The knobs users turn keep flat names (``KNOBS``): TALKSEARCH_<NAME> in the environment, the same
name as a keyword to ``from_env`` and ``changed``.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from index.embedder import EmbedderSettings
from index.ranking import FusionSettings
from index.vectors import VectorSettings
from ingest.chunking import ChunkingSettings
from ingest.transcribe import WhisperSettings, glossary


@dataclass
class IngestSettings:
    """What adding a recording does beyond recognition."""

    # An English rendering of speech in other languages (whisper's translate task).
    translate: bool = True
    # Longer recordings are refused (checked on the container's header, then while decoding).
    max_duration_hours: float = 4.0
    # Tell speakers apart (ingest/diarize.py); ``speakers`` fixes their number (0: estimated).
    diarize: bool = True
    speakers: int = 0


@dataclass
class RaySettings:
    """Transcribing on a Ray cluster (see api/distributed.py)."""

    # "auto" (the one running here), "local" (start one) or a head's address; None: in this process.
    address: str | None = None
    # Workers to start (0: as many as the cluster's CPUs hold at ``worker_cpus`` each).
    workers: int = 0
    # CPUs (whisper threads) per worker: two workers of one CPU did 1.46x the work of one of two.
    worker_cpus: int = 1


@dataclass
class HttpSettings:
    """The HTTP API (see api/app.py for who may do what)."""

    api_key: str | None = None
    # Also require the key for searches, transcripts and media (a private archive on a shared server).
    protect_reads: bool = False
    max_upload_mb: int = 500
    # Bodies of the JSON endpoints (search, metadata edits) are refused beyond this, before being parsed.
    max_json_kb: int = 64
    # Host names (comma-separated) the server answers besides localhost, 127.0.0.1 and [::1]: required for
    # any other name without a key, and with a key a listed name turns the check on (see api/app.py).
    allowed_hosts: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000


@dataclass
class Settings:
    # The library folder: its records, unless ``store`` names a server; its uploaded media and job files always.
    library: Path = Path("talksearch-library")
    # Records, keyword terms and vectors in PostgreSQL with pgvector (a postgresql:// URI) instead of
    # the library folder, so several servers and workers share them (see index/pgstore.py).
    store: str | None = None
    whisper: WhisperSettings = field(default_factory=WhisperSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    chunking: ChunkingSettings = field(default_factory=ChunkingSettings)
    fusion: FusionSettings = field(default_factory=FusionSettings)
    vectors: VectorSettings = field(default_factory=VectorSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    ray: RaySettings = field(default_factory=RaySettings)
    http: HttpSettings = field(default_factory=HttpSettings)

    @property
    def models_dir(self) -> Path:
        return self.whisper.cache_dir

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Build from TALKSEARCH_<KNOB> variables, then apply the overrides (CLI flags) that are not None."""
        environ = os.environ if environ is None else environ
        given = {name: environ[f"TALKSEARCH_{name.upper()}"] for name in KNOBS if environ.get(f"TALKSEARCH_{name.upper()}")}
        return cls().changed(**given).changed(**{name: value for name, value in overrides.items() if value is not None})

    def changed(self, **knobs) -> "Settings":
        """A copy with these knobs (flat names, see ``KNOBS``) set; text is read as the knob's type."""
        settings = copy.deepcopy(self)
        for name, value in knobs.items():
            if name not in KNOBS:
                raise TypeError(f"no setting {name!r}")
            for path in KNOBS[name]:
                section, _, attribute = path.rpartition(".")
                owner = getattr(settings, section) if section else settings
                current = getattr(owner, attribute)
                setattr(owner, attribute, _coerce(name, value, current) if isinstance(value, str) else value)
        if "hotwords" in knobs:  # refused now, not at the first recording, when Whisper could not hold it
            settings.whisper.hotwords = glossary(settings.whisper.hotwords)
        return settings


KNOBS: dict[str, tuple[str, ...]] = {
    "library": ("library",), "store": ("store",),
    "models_dir": ("whisper.cache_dir", "embedder.cache_dir"), "device": ("whisper.device", "embedder.device"),
    "whisper_model": ("whisper.model",), "beam_size": ("whisper.beam_size",), "translate_beam_size": ("whisper.translate_beam_size",),
    "window_minutes": ("whisper.window_minutes",), "whisper_parallel": ("whisper.parallel",), "whisper_threads": ("whisper.cpu_threads",),
    "hotwords": ("whisper.hotwords",),
    # onnx-int8 (8-bit weights, default), onnx (float32) or torch; see index/onnx_embedder.py.
    "embed_model": ("embedder.model",), "embed_backend": ("embedder.backend",),
    # A second embedding model beside the first (use-multilingual-v3, or a sentence-transformers
    # name), and its weight; see index/embedder.py.
    "embed_companion": ("embedder.companion",), "embed_companion_weight": ("embedder.companion_weight",),
    # Weight of keyword evidence against the vector ranking in hybrid search (0 = vectors alone).
    "lexical_weight": ("fusion.lexical_weight",),
    "chunk_min_seconds": ("chunking.min_seconds",), "chunk_max_seconds": ("chunking.max_seconds",),
    "translate": ("ingest.translate",), "max_duration_hours": ("ingest.max_duration_hours",),
    "diarize": ("ingest.diarize",), "speakers": ("ingest.speakers",),
    "ray": ("ray.address",), "ray_workers": ("ray.workers",), "ray_worker_cpus": ("ray.worker_cpus",),
    **{name: (f"http.{name}",) for name in ("api_key", "protect_reads", "max_upload_mb", "max_json_kb", "allowed_hosts",
                                            "host", "port")},
}
"""Flat name (TALKSEARCH_<NAME>, a keyword of ``from_env``/``changed``) → the setting(s) it sets."""


def _coerce(name: str, raw: str, current):
    if isinstance(current, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(current, float):
        try:
            return float(raw)
        except ValueError as exc:
            raise UserError(f"TALKSEARCH_{name.upper()} must be a number, not {raw!r}") from exc
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError as exc:
            raise UserError(f"TALKSEARCH_{name.upper()} must be a whole number, not {raw!r}") from exc
    if isinstance(current, tuple):
        return tuple(item.strip().lower() for item in raw.split(",") if item.strip())
    if isinstance(current, Path) or name in {"library", "models_dir"}:
        return Path(raw).expanduser()
    return raw
