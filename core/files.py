"""File digests: the identity of a recording's bytes and the integrity of model files."""
from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import MediaError


def content_hash(path: Path) -> str:
    """SHA-256 of the bytes, so the same recording under another name is recognised."""
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
