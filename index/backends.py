"""Which store a location names: the one factory, so nothing above the store knows the backends.

A folder path is the embedded store (SQLite, tantivy, FAISS segments: index/store.py); a
``postgresql://`` URI the PostgreSQL store (index/pgstore.py), whose driver is imported only then.
"""
from __future__ import annotations

from pathlib import Path

from .lexical import Analyzer
from .store import EmbeddedStore, Store, StoreError, folder_dimension, is_server
from .vectors import VectorSettings


def stored_dimension(location: str | Path) -> int | None:
    """The vector size an existing library was built with (None for a new one), without opening it."""
    if is_server(location):
        from .pgstore import stored_dimension as on_server

        return on_server(str(location))
    return folder_dimension(Path(location))


def open_store(location: str | Path, dimension: int, analyzer: Analyzer | None = None,
               vector_settings: VectorSettings | None = None) -> Store:
    """A folder path opens (or creates) the embedded store, a ``postgresql://`` URI the PostgreSQL store."""
    text = str(location)
    if is_server(text):
        from .pgstore import PgStore

        return PgStore(text, dimension, analyzer, vector_settings)
    if "://" in text:
        raise StoreError(f"no store backend for {text.split('://')[0]!r} URLs; give a library folder or a postgresql:// URI")
    return EmbeddedStore(Path(location), dimension, analyzer, vector_settings)
