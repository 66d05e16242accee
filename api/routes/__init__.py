"""The HTTP routes, one module per area (service, search, recordings, playback, jobs)."""
