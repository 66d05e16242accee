"""All settings in one place: defaults, overridden by TALKSEARCH_* environment variables,
overridden by command-line flags. Passed down explicitly; nothing reads the environment later."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from core.errors import UserError
from index.embedder import DEFAULT_BACKEND, DEFAULT_EMBEDDER
from models.whisper import DEFAULT_WHISPER, default_models_dir


@dataclass
class Settings:
    # The library folder: its records, unless ``store`` names a server; its uploaded media and job files always.
    library: Path = Path("talksearch-library")
    # Records, keyword terms and vectors in PostgreSQL with pgvector (a postgresql:// URI) instead of
    # the library folder, so several servers and workers share them (see index/pgstore.py).
    store: str | None = None
    models_dir: Path = field(default_factory=default_models_dir)
    whisper_model: str = DEFAULT_WHISPER
    embed_model: str = DEFAULT_EMBEDDER
    # onnx (float32, default), onnx-int8 (faster, slightly worse) or torch; see index/onnx_embedder.py.
    embed_backend: str = DEFAULT_BACKEND
    beam_size: int = 5
    # Weight of keyword evidence against the vector ranking in hybrid search (0 = vectors alone).
    lexical_weight: float = 1.0
    translate: bool = True
    # Longer recordings are refused (checked on the container's header, then while decoding).
    max_duration_hours: float = 4.0
    # Media is decoded and transcribed this many minutes at a time, so memory stays bounded.
    window_minutes: float = 10.0
    device: str = "cpu"
    # Tell speakers apart at ingest (ingest/diarize.py); ``speakers`` fixes their number (0: estimated).
    diarize: bool = True
    speakers: int = 0
    # Transcribe on a Ray cluster: "auto" (the one running here), "local" (start one) or a head's
    # address; None transcribes in this process (see api/distributed.py).
    ray: str | None = None
    # Ray workers to start (0: as many as the cluster's CPUs hold at ray_worker_cpus each).
    ray_workers: int = 0
    # CPUs (whisper threads) per Ray worker: two workers of one CPU did 1.46x the work of one of two.
    ray_worker_cpus: int = 1
    # HTTP API
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

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Build from TALKSEARCH_<FIELD> variables, then apply non-None overrides (CLI flags)."""
        environ = os.environ if environ is None else environ
        settings = cls()
        for f in fields(cls):
            raw = environ.get(f"TALKSEARCH_{f.name.upper()}")
            if raw is not None and raw != "":
                setattr(settings, f.name, _coerce(f.name, raw, getattr(settings, f.name)))
        for name, value in overrides.items():
            if value is not None:
                setattr(settings, name, _coerce(name, value, getattr(settings, name)) if isinstance(value, str) else value)
        return settings


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
