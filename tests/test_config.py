from pathlib import Path

import pytest

from api.config import Settings


def test_environment_then_flags():
    env = {"TALKSEARCH_LIBRARY": "/data/lib", "TALKSEARCH_WHISPER_MODEL": "large-v3", "TALKSEARCH_MAX_UPLOAD_MB": "20",
           "TALKSEARCH_TRANSLATE": "false", "TALKSEARCH_LEXICAL_WEIGHT": "0.5"}
    settings = Settings.from_env(env, whisper_model="small", embed_model=None)
    assert settings.library == Path("/data/lib")
    assert settings.whisper_model == "small"          # the flag beats the environment
    assert settings.embed_model == "multilingual-e5-small"  # None means "not given"
    assert settings.max_upload_mb == 20 and settings.translate is False and settings.lexical_weight == 0.5


def test_bad_number_is_a_clear_error():
    with pytest.raises(ValueError, match="TALKSEARCH_PORT must be a whole number"):
        Settings.from_env({"TALKSEARCH_PORT": "eighty"})
