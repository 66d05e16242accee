"""Model assembly: the offline Whisper and e5 files put together once, and where they are kept."""
