"""Model assembly and loading: whisper base joined from its two PyPI halves, and clear errors for
missing or damaged models."""
import pytest

from core.errors import ModelError
from ingest.transcribe import Transcriber, WhisperSettings
from models.whisper import MODEL_BIN_SIZE, assemble_packaged_base, resolve_whisper


@pytest.mark.needs_models
def test_joined_model_is_checked_and_rebuilt_when_damaged(tmp_path):
    model = assemble_packaged_base(tmp_path)
    assert (model / "model.bin").stat().st_size == MODEL_BIN_SIZE
    assert {p.name for p in model.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.json"}
    with open(model / "model.bin", "r+b") as damaged:
        damaged.seek(1000)
        damaged.write(b"\0" * 64)
    (model / ".verified").unlink()
    assert assemble_packaged_base(tmp_path) == model
    with open(model / "model.bin", "rb") as repaired:
        repaired.seek(1000)
        assert repaired.read(64) != b"\0" * 64


def test_names_and_paths_resolve(tmp_path):
    assert resolve_whisper(str(tmp_path), tmp_path) == str(tmp_path)
    assert resolve_whisper("large-v3", tmp_path) == "large-v3"


def test_missing_model_is_a_clear_error(tmp_path):
    transcriber = Transcriber(WhisperSettings(model=str(tmp_path / "no-such-model-dir"), cache_dir=tmp_path))
    with pytest.raises(ModelError, match="cannot load whisper model"):
        transcriber.warm_up()


def test_missing_embedding_model_is_a_clear_error(tmp_path):
    from index.embedder import Embedder, EmbedderSettings

    embedder = Embedder(EmbedderSettings(model=str(tmp_path / "no-such-embedding-model"), cache_dir=tmp_path))
    with pytest.raises(ModelError, match="cannot load embedding model"):
        embedder.warm_up()
