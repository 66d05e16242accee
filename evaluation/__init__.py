"""Search quality: labelled query sets, their metrics, and the runner behind ``talksearch eval``."""
