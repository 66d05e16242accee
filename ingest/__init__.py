"""Ingest stage: media or subtitle files in, timed transcripts and search chunks out.

Nothing here knows about indexes or HTTP; later stages import from here, never the reverse.
"""
