"""Errors a user can act on. Each message is one line that says what went wrong and with what."""


class TalksearchError(Exception):
    """Base for every error the CLI and API turn into a one-line message (not a traceback)."""


class MediaError(TalksearchError):
    """The file cannot be read as audio: missing, unknown format, corrupt, or without sound."""


class NoSpeechError(TalksearchError):
    """The audio decodes but holds no speech worth indexing (silence, noise, only hallucinations)."""


class TranscriptFormatError(TalksearchError):
    """A subtitle/transcript file could not be parsed."""


class ModelError(TalksearchError):
    """A model could not be found, assembled or loaded."""


class SpeakerError(TalksearchError):
    """A speaker asked for by label or name is not one of the recording's."""
