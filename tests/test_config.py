from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from api.config import Settings
from core.errors import UserError
from index.ranking import FusionSettings
from ingest.chunking import ChunkingSettings
from ingest.transcribe import MAX_HOTWORDS, WhisperSettings, glossary


def test_environment_then_flags():
    env = {"TALKSEARCH_LIBRARY": "/data/lib", "TALKSEARCH_WHISPER_MODEL": "large-v3", "TALKSEARCH_MAX_UPLOAD_MB": "20",
           "TALKSEARCH_TRANSLATE": "false", "TALKSEARCH_LEXICAL_WEIGHT": "0.5"}
    settings = Settings.from_env(env, whisper_model="small", embed_model=None)
    assert settings.library == Path("/data/lib")
    assert settings.whisper.model == "small"          # the flag beats the environment
    assert settings.embedder.model == "multilingual-e5-small"  # None means "not given"
    assert settings.http.max_upload_mb == 20 and settings.ingest.translate is False and settings.fusion.lexical_weight == 0.5


def test_bad_number_is_a_clear_error():
    with pytest.raises(ValueError, match="TALKSEARCH_PORT must be a whole number"):
        Settings.from_env({"TALKSEARCH_PORT": "eighty"})


def test_one_setting_reaches_every_stage_that_uses_it():
    """The models folder and device are one knob each, though whisper and the embedder both read them;
    the stages' own settings are the sections, so their defaults are the only ones."""
    settings = Settings.from_env({"TALKSEARCH_MODELS_DIR": "/models", "TALKSEARCH_CHUNK_MAX_SECONDS": "30"}, device="cuda")
    assert settings.whisper.cache_dir == settings.embedder.cache_dir == settings.models_dir == Path("/models")
    assert settings.whisper.device == settings.embedder.device == "cuda"
    assert settings.chunking.max_seconds == 30.0 and settings.chunking == replace(ChunkingSettings(), max_seconds=30.0)
    assert Settings().whisper == WhisperSettings() and Settings().fusion == FusionSettings()


def test_changed_is_a_copy():
    settings = Settings.from_env({})
    other = settings.changed(ray="local", ray_workers="3", api_key=None)
    assert (other.ray.address, other.ray.workers, settings.ray.address) == ("local", 3, None)
    with pytest.raises(TypeError, match="no setting 'colour'"):
        settings.changed(colour="red")


def test_a_bad_number_is_a_user_error():
    with pytest.raises(UserError):
        Settings.from_env({"TALKSEARCH_BEAM_SIZE": "five"})


def test_hot_words_reach_whisper_for_transcription_only():
    """A glossary from the environment or --hotwords steers the transcribing pass; the English
    rendering is left alone (hot words there would push the original's spellings into English)."""
    from api.cli import build_parser, settings_from
    from ingest.transcribe import Transcriber

    assert Settings.from_env({"TALKSEARCH_HOTWORDS": "Kazan, светофоры"}).whisper.hotwords == "Kazan, светофоры"
    args = build_parser().parse_args(["ingest", "talk.opus", "--hotwords", "Sejong"])
    transcriber = Transcriber(settings_from(args).whisper)
    asked = []

    class Whisper:
        def transcribe(self, audio, **options):
            asked.append(options["hotwords"])
            return iter(()), None
    transcriber._model = Whisper()
    for task in ("transcribe", "translate"):
        transcriber._decode(np.zeros(16000, dtype=np.float32), 0.0, "ko", task, words=task == "transcribe")
    # a recording's own glossary (an upload's) comes beside the settings' one
    transcriber._decode(np.zeros(16000, dtype=np.float32), 0.0, "ko", "transcribe", words=True, hotwords="세종, Kazan")
    transcriber._decode(np.zeros(16000, dtype=np.float32), 0.0, "ko", "translate", words=False, hotwords="세종, Kazan")
    assert asked == ["Sejong", None, "Sejong, 세종, Kazan", None]


def test_the_english_rendering_has_its_own_beam():
    from ingest.transcribe import Transcriber

    assert Settings().whisper.translate_beam_size == 2
    transcriber = Transcriber(Settings.from_env({"TALKSEARCH_TRANSLATE_BEAM_SIZE": "3"}).whisper)
    beams = []

    class Whisper:
        def transcribe(self, audio, **options):
            beams.append((options["task"], options["beam_size"]))
            return iter(()), None
    transcriber._model = Whisper()
    for task in ("transcribe", "translate"):
        transcriber._decode(np.zeros(16000, dtype=np.float32), 0.0, "ru", task, words=task == "transcribe")
    assert beams == [("transcribe", 5), ("translate", 3)]


def test_a_recordings_glossary_is_tidied_and_refused_when_whisper_could_not_hold_it():
    assert glossary("  Kazan,\n  светофоры ") == "Kazan, светофоры"
    assert glossary("") is None and glossary(None) is None and glossary("   ") is None
    assert glossary("세" * MAX_HOTWORDS) == "세" * MAX_HOTWORDS
    with pytest.raises(UserError, match=f"at most {MAX_HOTWORDS}"):
        glossary("세" * (MAX_HOTWORDS + 1))
    # with the server's own glossary, which Whisper gets beside it
    assert glossary("세" * 100, beside="Kazan") == "세" * 100
    with pytest.raises(UserError, match=r"204 characters long together with the server's own \(5 and a separator\); Whisper holds at most 200"):
        glossary("세" * 197, beside="Kazan")
    # the server's own is refused when it is read, not at the first recording
    with pytest.raises(UserError, match=f"at most {MAX_HOTWORDS}"):
        Settings.from_env({"TALKSEARCH_HOTWORDS": "Kazan, " * 40})
    assert Settings.from_env({"TALKSEARCH_HOTWORDS": "  Kazan,\n Sejong "}).whisper.hotwords == "Kazan, Sejong"
