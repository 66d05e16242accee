"""Sentence embeddings on ONNX Runtime, without torch at query time.

A sentence-transformers folder made of Transformer + Pooling (mean or CLS) (+ Normalize) is
exported once with ``torch.onnx.export`` (dynamo) into ``<models>/onnx/<folder>-<path hash>/``;
``int8`` (the default backend, ``onnx-int8``) then stores each MatMul's weights in 8-bit blocks of
32 with a scale each, and quantizes its inputs per block at run time (onnxruntime's MatMulNBits,
accuracy level 4). At run time only onnxruntime, tokenizers (the folder's ``tokenizer.json``)
and numpy are imported; prompts, truncation, pooling and L2 normalisation follow
sentence-transformers. An export whose vectors stray from sentence-transformers' on a few probe
sentences is refused; an 8-bit one is then remembered as refused (``int8.refused.json``) and the
model runs in float32. A graph or weights file whose size, or hash once its mtime changed, no
longer matches what was written is exported again.

Why int8 in blocks: a query of ~14 tokens is bound by reading the weights, not by arithmetic
(float32: 4.6 ms for 3 tokens, 8.9 for 14, 17 for 48; 84 MB of weights per query). multilingual-e5-
small, same run (``python -m benchmarks.embedding --rounds 2``, quiet 2-core machine, 2026-11-27),
onnx float32 / onnx-int8 / torch:

  cold process: import+load+query  0.90 s  0.84 s  6.15 s
  query, batch of 1, p50 / p99     8.1/10.9  4.7/7.6  13.6/18.8 ms
  passages/s (default batches)     390      411     108
  peak RSS, cold                   434      393     824 MB
  cosine to torch, min             1.0000   0.9998  -      (1,009 ko/ru/en texts)
  dev queries, same top-1 as torch 1.000    0.980   -      (0.990 on a torch-built index)
  translation found first (R@1)    0.605    0.610   0.605
The development evaluation and 200 real-subtitle queries scored the same or better with int8
queries (README: "Query embedding"). onnxruntime's dynamic quantization, used for int8 before
(int8 weights per channel, activations per tensor), was as fast but strayed: cosine 0.991, same
top-1 0.916, translations first 0.575, so it was opt-in. Of the ~0.5 s load, about half is
reading the 250k-piece tokenizer.json.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import ModelError
from core.files import content_hash

log = logging.getLogger(__name__)

# Batches of passages embedded at once, each on its own thread: a recording's views at ingest
# (150 chunk-sized ko/ru/en texts, alternating, 3 runs: 2.83 → 1.50 s on 2 cores).
PARALLEL_BATCHES = 2
# Tokens in one batch, padding counted (a longer text goes alone). A recording's chunks are long
# (40 s of speech: 150-250 tokens), and 32 of them at once held ~600 MB of activations, which
# onnxruntime's arena then kept. Embedding the views of 20 min of Russian speech (one process,
# 2-core machine): no limit 5.1-5.2 s, peak 1,085-1,092 MB; 2,048 tokens 4.9-5.0 s, 818 MB;
# 512 tokens 4.4-4.5 s, 615-618 MB; 256 tokens 4.4 s, 574 MB.
TOKENS_PER_BATCH = 512
# int8: weights quantized in blocks of this many along the input dimension. Blocks of 64 ran a
# 14-token query ~0.5 ms faster alone (4.37 against 4.86 ms) but strayed more: same top-5 as torch
# 0.950 against 0.970, translations found first 0.601 against 0.610 (benchmarks.embedding).
BLOCK = 32
# Bump a variant's number when its export changes, so graphs written by older code are redone.
FORMAT_VERSION = {"fp32": 2, "int8": 3}
# Least cosine to sentence-transformers' vectors on PROBES for an export to be used
# (multilingual-e5-small int8: 0.9998 at worst over 1,009 ko/ru/en texts).
MIN_AGREEMENT = {"fp32": 0.999, "int8": 0.999}
PROBES = [
    "Smart traffic lights cut waiting times at busy crossings.",
    "Умные светофоры сократили время ожидания на перекрёстках.",
    "스마트 신호등이 혼잡한 교차로의 대기 시간을 줄였습니다.",
    "Next slide, please.",
    "Есть ли вопросы?",
    "질문 있으십니까?",
]


class QuantizedStrays(ModelError):
    """The 8-bit graph cannot be made, or strays from the model: its float32 graph may still run."""


@dataclass
class OnnxSpec:
    """What running a graph needs besides the graph; stored beside it as ``<variant>.json``."""

    format: int
    source_fingerprint: str
    files: dict[str, dict]  # <variant>.onnx and its weights <variant>.onnx.data: size, sha256, mtime_ns
    dimension: int
    max_length: int
    pooling: str  # "mean" or "cls"
    query_prompt: str
    document_prompt: str
    pad_id: int
    pad_token: str
    agreement: float  # least cosine to sentence-transformers on PROBES, at export


class OnnxEncoder:
    """sentence-transformers' encode_query/encode_document (normalised) on onnxruntime."""

    def __init__(self, graph: Path, tokenizer: Path, spec: OnnxSpec, batch_size: int = 32):
        import onnxruntime
        from tokenizers import Tokenizer

        self.spec, self.batch_size, self.dimension = spec, batch_size, spec.dimension
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(spec.max_length)
        # One thread, not spinning: a query is one request among several, and ingest runs beside
        # Whisper. Measured on the 2-core machine, 100k-chunk library, one other busy process:
        # hybrid search p50 33 → 23 ms, 128 passages 2.1 → 1.8 s, against the default pool.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], kind: str) -> np.ndarray:
        """kind "query" or "document"; texts of similar length are batched together, at most
        ``TOKENS_PER_BATCH`` tokens to a batch (padding counted), ``PARALLEL_BATCHES`` batches at
        a time (each runs on its calling thread: the session has one thread of its own)."""
        prompt = self.spec.query_prompt if kind == "query" else self.spec.document_prompt
        encodings = self.tokenizer.encode_batch([prompt + text for text in texts])
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self.batch_size and \
                    (len(batches[-1]) + 1) * len(encodings[batches[-1][0]].ids) <= TOKENS_PER_BATCH:
                batches[-1].append(int(i))
            else:
                batches.append([int(i)])
        out = np.empty((len(texts), self.dimension), np.float32)
        embed = lambda batch: self._batch([encodings[i] for i in batch])  # noqa: E731
        if len(batches) == 1:  # a query: no threads to start
            out[batches[0]] = embed(batches[0])
            return out
        with ThreadPoolExecutor(max_workers=PARALLEL_BATCHES) as workers:
            for batch, vectors in zip(batches, workers.map(embed, batches)):
                out[batch] = vectors
        return out

    def _batch(self, encodings: list) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self.spec.pad_id, np.int64)
        mask = np.zeros((len(encodings), width), np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        if self.spec.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            vectors = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def load(model_dir: Path, cache_dir: Path, variant: str, batch_size: int = 32) -> OnnxEncoder:
    """The encoder for a local sentence-transformers folder; variant "fp32" or "int8". Exports
    (torch, about half a minute) when no intact graph of the folder as it is now is cached;
    ModelError when the model cannot be exported."""
    folder = cache_folder(model_dir, cache_dir)
    source = fingerprint(model_dir)
    refusal = folder / f"{variant}.refused.json"  # a quantized graph refused once is not made at every start
    memo = {"format": FORMAT_VERSION[variant], "source_fingerprint": source}
    try:
        refused = json.loads(refusal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        refused = {}
    if {key: refused.get(key) for key in memo} == memo:
        raise QuantizedStrays(refused.get("reason", f"{model_dir} was refused in {variant}"))
    spec = _cached_spec(folder, variant, source)
    if spec is None:
        log.info("exporting embedding model %s to ONNX (%s) in %s, once", model_dir, variant, folder)
        try:
            spec = export(model_dir, folder, variant, source)
        except QuantizedStrays as exc:
            refusal.write_text(json.dumps({**memo, "reason": str(exc)}, ensure_ascii=False) + "\n", encoding="utf-8")
            raise
    return OnnxEncoder(folder / f"{variant}.onnx", model_dir / "tokenizer.json", spec, batch_size)


def cache_folder(model_dir: Path, cache_dir: Path) -> Path:
    key = hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:12]
    return cache_dir / "onnx" / f"{model_dir.name}-{key}"


def fingerprint(model_dir: Path) -> str:
    """Names, sizes and mtimes of the folder's files: a changed model is exported again."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(model_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cached_spec(folder: Path, variant: str, source: str) -> OnnxSpec | None:
    try:
        spec = OnnxSpec(**json.loads((folder / f"{variant}.json").read_text(encoding="utf-8")))
        stats = {name: (folder / name).stat() for name in _files(variant)}
    except (OSError, ValueError, TypeError):
        return None
    if spec.format != FORMAT_VERSION[variant] or spec.source_fingerprint != source or set(spec.files) != set(stats):
        return None
    touched = False
    for name, stat in stats.items():
        want = spec.files[name]
        if stat.st_size != want["size"]:
            return None
        if stat.st_mtime_ns != want["mtime_ns"]:
            # Written to since export: hash it (fp32 weights: ~1 s, once) and keep the mtime if intact.
            if content_hash(folder / name) != want["sha256"]:
                log.warning("cached ONNX file %s is damaged; exporting it again", folder / name)
                return None
            want["mtime_ns"], touched = stat.st_mtime_ns, True
    if touched:
        _write_spec(folder, variant, spec)
    return spec


def _files(variant: str) -> tuple[str, str]:
    """The graph and its weights, kept apart so that onnxruntime maps the weights instead of
    parsing them (fp32 session start 0.96 s -> 0.14 s)."""
    return f"{variant}.onnx", f"{variant}.onnx.data"


def _write_spec(folder: Path, variant: str, spec: OnnxSpec) -> None:
    tmp = folder / f".{variant}.json.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(spec), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / f"{variant}.json")


def export(model_dir: Path, folder: Path, variant: str, source: str) -> OnnxSpec:
    """Export (and for int8 quantize) the folder's model into folder/<variant>.onnx, checked
    against sentence-transformers on PROBES. Needs torch and sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    if not (model_dir / "tokenizer.json").is_file():
        raise ModelError(f"cannot export {model_dir} to ONNX: it has no tokenizer.json")
    try:
        model = SentenceTransformer(str(model_dir), device="cpu")
    except Exception as exc:  # same as the torch backend: any load failure is a model error
        raise ModelError(f"cannot load embedding model {str(model_dir)!r}: {_first_line(exc)}") from exc
    spec = _describe(model, model_dir, source, variant)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{variant}-", dir=folder))
    try:
        graph = tmp / "fp32.onnx"
        try:
            with _quiet():
                _export_graph(model[0].auto_model, graph)
        except Exception as exc:  # exporter errors: this model cannot run on ONNX
            raise ModelError(f"cannot export {model_dir} to ONNX: {_first_line(exc)}") from exc
        if variant == "int8":
            try:
                with _quiet():
                    graph = _quantize(graph, tmp / "int8.onnx")
            except Exception as exc:  # quantizer errors: the float32 graph may still run
                raise QuantizedStrays(f"cannot quantize {model_dir} to 8 bits: {_first_line(exc)}") from exc
        spec.agreement = _agreement(model, OnnxEncoder(graph, model_dir / "tokenizer.json", spec))
        if spec.agreement < MIN_AGREEMENT[variant]:
            refused = QuantizedStrays if variant != "fp32" else ModelError
            raise refused(f"{model_dir} on ONNX ({variant}) strays from sentence-transformers "
                          f"(cosine {spec.agreement:.4f} < {MIN_AGREEMENT[variant]})")
        (folder / f"{variant}.json").unlink(missing_ok=True)
        for name in _files(variant):  # the graph names its weights file: keep both names
            made = tmp / name
            spec.files[name] = {"size": made.stat().st_size, "sha256": content_hash(made), "mtime_ns": made.stat().st_mtime_ns}
            os.replace(made, folder / name)
        _write_spec(folder, variant, spec)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return spec


def _describe(model, model_dir: Path, source: str, variant: str) -> OnnxSpec:
    """The run-time settings of a sentence-transformers model, or ModelError for layouts the
    ONNX encoder does not reproduce (dense layers, other poolings, prompts left out of pooling)."""
    layout = [type(module).__name__ for module in model]
    pooling = model[1] if len(layout) > 1 else None
    if layout[:2] != ["Transformer", "Pooling"] or set(layout[2:]) - {"Normalize"}:
        raise ModelError(f"cannot export {model_dir} to ONNX: modules {'+'.join(layout)} "
                         "(only Transformer+Pooling[+Normalize])")
    if pooling.pooling_mode not in ("mean", "cls") or not pooling.include_prompt or not model.max_seq_length:
        raise ModelError(f"cannot export {model_dir} to ONNX: pooling {pooling.pooling_mode!r} "
                         f"(include_prompt={pooling.include_prompt}), max length {model.max_seq_length}")

    def prompt(*names: str) -> str:  # the prompt encode_query/encode_document would use
        for name in names:
            if name in model.prompts:
                return model.prompts[name]
        return model.prompts.get(model.default_prompt_name, "") if model.default_prompt_name else ""

    return OnnxSpec(format=FORMAT_VERSION[variant], source_fingerprint=source, files={},
                    dimension=int(model.get_embedding_dimension()), max_length=int(model.max_seq_length),
                    pooling=pooling.pooling_mode, query_prompt=prompt("query"),
                    document_prompt=prompt("document", "passage", "corpus"),
                    pad_id=int(model.tokenizer.pad_token_id), pad_token=str(model.tokenizer.pad_token),
                    agreement=0.0)


def _quantize(graph: Path, out: Path) -> Path:
    """Each MatMul's weights in 8-bit blocks of BLOCK (a scale per block) and its inputs quantized
    per block at run time (accuracy level 4: int8 dot products)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(graph)), bits=8, block_size=BLOCK, is_symmetric=True, accuracy_level=4)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=True)
    return out


def _export_graph(module, path: Path) -> None:
    import torch

    # Example sizes 2 and 8, not 1: torch.export fixes dimensions of size 0 and 1.
    ids = torch.ones((2, 8), dtype=torch.long)
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    with torch.inference_mode():
        torch.onnx.export(module.eval(), (), str(path), kwargs={"input_ids": ids, "attention_mask": torch.ones_like(ids)},
                          input_names=["input_ids", "attention_mask"], output_names=["token_embeddings"],
                          dynamic_shapes={"input_ids": dims, "attention_mask": dims},
                          dynamo=True, external_data=True, verbose=False)


@contextmanager
def _quiet():
    """Silence the exporter's and quantizer's advice (shape names, "run pre-processing", which
    fails on this graph and changes nothing measurable) for the few seconds they run."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def _agreement(model, encoder: OnnxEncoder) -> float:
    torch_vectors = np.concatenate([
        model.encode_query(PROBES, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
        model.encode_document(PROBES, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)])
    onnx_vectors = np.concatenate([encoder.encode(PROBES, "query"), encoder.encode(PROBES, "document")])
    return float((torch_vectors * onnx_vectors).sum(axis=1).min())


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
