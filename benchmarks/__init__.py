"""Benchmarks: figures, never timed tests. Where they find the project and the shared fixtures."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Shared speech, subtitles and texts beside the project; benchmarks that need them say so when absent.
FIXTURES = ROOT.parent / "shared" / "fixtures"
