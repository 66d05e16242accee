"""The layering cannot rot: import-linter checks the contracts in pyproject.toml (each stage imports
only those below it: core ← models ← ingest ← index ← evaluation ← api ← benchmarks; no cycles inside a package)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    checked = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "0 broken" in checked.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The check itself works: in a copy of the tree, an ingest module importing api breaks it."""
    for package in ("core", "models", "ingest", "index", "evaluation", "api", "benchmarks"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "demo", "web"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "ingest" / "_layer_probe.py").write_text("import api.render  # noqa: F401\n")
    checked = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert checked.returncode == 1 and "ingest._layer_probe -> api.render" in checked.stdout
