"""Embedding backends on the real multilingual-e5-small: ONNX Runtime against sentence-transformers
on torch, the cache of exported graphs, the torch-free query path, and configuration errors."""
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from index import onnx_embedder
from index.embedder import BACKENDS, DEFAULT_BACKEND, Embedder, EmbedderSettings
from core.errors import ModelError
from core.files import content_hash
from tests.helpers import ROOT

TEXTS = [
    "Smart traffic lights cut waiting times at busy intersections.",
    "Next year we plan to extend the pilots to three more districts.",
    "Умные светофоры сократили время ожидания на перекрёстках.",
    "Мы защищаем персональные данные жителей.",
    "스마트 신호등이 교차로의 대기 시간을 줄였습니다.",
    "주민을 위한 디지털 플랫폼을 만들었습니다.",
]


@pytest.fixture(scope="module")
def onnx(models) -> Embedder:
    """The session's e5, on the default backend."""
    embedder = models.embedder
    embedder.warm_up()
    assert isinstance(embedder._encoder, onnx_embedder.OnnxEncoder), "the default backend fell back to torch"
    return embedder


def test_onnx_embeddings_agree_with_torch(onnx):
    torch = Embedder(replace(onnx.settings, backend="torch"))
    for kind in ("queries", "passages"):
        got, want = getattr(onnx, kind)(TEXTS), getattr(torch, kind)(TEXTS)
        assert got.dtype == np.float32 and got.shape == want.shape == (len(TEXTS), onnx.dimension)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        assert (got * want).sum(axis=1).min() >= 0.999  # int8 blocks: 0.9998 at worst on 1,009 texts
    assert onnx.queries([]).shape == (0, onnx.dimension)


def test_batches_embedded_side_by_side_keep_each_text_in_its_place(onnx, monkeypatch):
    """Passages go through the session a few batches at once (one thread each): every vector must
    still land on its own text's row."""
    encoder = onnx._encoder
    texts = [f"{text} ({n})" for n in range(7) for text in TEXTS]  # 42 texts of differing lengths
    monkeypatch.setattr(encoder, "batch_size", 4)  # 11 batches
    together = encoder.encode(texts, "document")
    alone = np.concatenate([encoder.encode([text], "document") for text in texts])
    assert (together * alone).sum(axis=1).min() >= 0.9999
    # Long texts go fewer to a batch: no batch of two or more holds more tokens than the limit.
    sizes, run = [], encoder._batch
    monkeypatch.setattr(encoder, "_batch", lambda batch: sizes.append((len(batch), max(len(e.ids) for e in batch))) or run(batch))
    monkeypatch.setattr(onnx_embedder, "TOKENS_PER_BATCH", 40)
    limited = encoder.encode(texts, "document")
    assert all(count * width <= 40 for count, width in sizes if count > 1) and max(count for count, _ in sizes) > 1
    assert sum(count for count, _ in sizes) == len(texts) and (limited * alone).sum(axis=1).min() >= 0.9999


def test_cross_lingual_pair_ranks_above_unrelated_pair(onnx):
    queries = onnx.queries(["умные светофоры", "스마트 신호등"])
    related, unrelated = onnx.passages(["Smart traffic lights cut waiting times at busy intersections.",
                                        "Mix two eggs with flour and bake the cake for forty minutes."])
    assert (queries @ related > queries @ unrelated + 0.05).all()


def test_query_path_does_not_import_torch(onnx):
    code = ("import sys; from pathlib import Path; from index.embedder import Embedder, EmbedderSettings; "
            f"v = Embedder(EmbedderSettings(cache_dir=Path({str(onnx.settings.cache_dir)!r}))).queries(['умные светофоры']); "
            "assert v.shape == (1, 384); print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_damaged_onnx_graph_is_exported_again(tmp_path, onnx, monkeypatch, caplog):
    model_dir = Path(onnx.resolve())
    variant = BACKENDS[DEFAULT_BACKEND]
    first = onnx_embedder.load(model_dir, tmp_path, variant)
    want = first.encode(TEXTS, "query")
    weights = onnx_embedder.cache_folder(model_dir, tmp_path) / f"{variant}.onnx.data"

    def no_export(*args):
        raise AssertionError("an intact cached graph was exported again")

    with monkeypatch.context() as patch:
        patch.setattr(onnx_embedder, "export", no_export)
        onnx_embedder.load(model_dir, tmp_path, variant)
    with open(weights, "r+b") as damaged:
        damaged.seek(weights.stat().st_size // 2)
        damaged.write(b"\0" * 4096)
    with caplog.at_level(logging.WARNING, logger="index.onnx_embedder"):
        again = onnx_embedder.load(model_dir, tmp_path, variant)
    assert "damaged" in caplog.text
    assert content_hash(weights) == again.spec.files[weights.name]["sha256"]
    np.testing.assert_allclose(again.encode(TEXTS, "query"), want, atol=1e-4)


def test_8_bit_weights_that_stray_run_in_float32_and_are_not_tried_again(tmp_path, onnx, monkeypatch, caplog):
    """A model whose 8-bit graph strays keeps ONNX in float32 rather than falling to torch, and the
    refusal is remembered, so a later start does not export and refuse it again."""
    monkeypatch.setitem(onnx_embedder.MIN_AGREEMENT, "int8", 1.01)  # no 8-bit graph can pass
    settings = replace(onnx.settings, model=onnx.resolve(), cache_dir=tmp_path, backend="onnx-int8")
    with caplog.at_level(logging.WARNING, logger="index.embedder"):
        first = Embedder(settings)
        first.warm_up()
    assert "runs in float32" in caplog.text and "strays from sentence-transformers" in caplog.text
    assert "runs on torch" not in caplog.text and isinstance(first._encoder, onnx_embedder.OnnxEncoder)
    assert (first.queries(TEXTS) * onnx.queries(TEXTS)).sum(axis=1).min() >= 0.999

    def no_export(*args):
        raise AssertionError("a refused graph was exported again")

    monkeypatch.setattr(onnx_embedder, "export", no_export)
    again = Embedder(settings)
    again.warm_up()
    np.testing.assert_allclose(again.queries(TEXTS), first.queries(TEXTS), atol=1e-5)


def test_unknown_backend_is_a_clear_error(tmp_path):
    embedder = Embedder(EmbedderSettings(cache_dir=tmp_path, backend="tensorrt"))
    with pytest.raises(ModelError, match=r"unknown embedding backend 'tensorrt': use onnx, onnx-int8, torch"):
        embedder.warm_up()


def test_model_onnx_cannot_run_falls_back_to_torch_with_a_warning(tmp_path, caplog):
    (tmp_path / "model").mkdir()  # a folder, but no sentence-transformers model
    embedder = Embedder(EmbedderSettings(model=str(tmp_path / "model"), cache_dir=tmp_path, backend=DEFAULT_BACKEND))
    with caplog.at_level(logging.WARNING, logger="index.embedder"), pytest.raises(ModelError, match="cannot load embedding model"):
        embedder.warm_up()
    assert "runs on torch: cannot export" in caplog.text
