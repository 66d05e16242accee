"""Errors a user can act on. Each message is one line that says what went wrong and with what."""


class TalksearchError(Exception):
    """Base for every error the CLI and API turn into a one-line message (not a traceback)."""


class UserError(TalksearchError, ValueError):
    """The request itself is wrong (a bad date, an unknown field or mode, an option out of range):
    a 4xx over HTTP and one line from the CLI. A ValueError too, so code written against the
    standard library's convention still catches it."""


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
