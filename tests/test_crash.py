"""A real ingest killed with SIGKILL at each point of a write, then the library opened, checked and
searched: every completed recording is present, nothing is half-indexed, and the killed file
ingests cleanly afterwards. The kill comes from inside the process (a wrapper script replaces one
function with one that calls it and then SIGKILLs itself), so each point is hit exactly."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest

from tests.helpers import DEMO, ROOT

pytestmark = pytest.mark.needs_models  # real ingests, in processes of their own

KILL_AT = """
import importlib, inspect, os, signal, sys
module, _, name = sys.argv[1].partition(":")
*path, attr = name.split(".")
owner = importlib.import_module(module)
for part in path:
    owner = getattr(owner, part)
original = inspect.getattr_static(owner, attr)
function = original.__func__ if isinstance(original, staticmethod) else original
def dying(*args, **kwargs):
    if sys.argv[2] == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = function(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return result
setattr(owner, attr, staticmethod(dying) if isinstance(original, staticmethod) else dying)
from api.cli import main
sys.exit(main(sys.argv[3:]))
"""

TALK = DEMO / "en_5g_pilots.opus"


def talksearch(library, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", *args, "--library", str(library)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def recordings(library) -> dict[str, str]:
    listed = talksearch(library, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return {r["title"]: r["id"] for r in json.loads(listed.stdout)}


@pytest.fixture(scope="module")
def base_library(tmp_path_factory):
    """Two completed recordings, imported from transcripts (no transcription needed)."""
    library = tmp_path_factory.mktemp("crash") / "base"
    done = talksearch(library, "import-transcript", str(DEMO / "ko_digital_platform.srt"),
                      "--translation", str(DEMO / "ko_digital_platform.en.srt"), "--title", "Korean platform")
    assert done.returncode == 0, done.stderr
    return library


@pytest.mark.parametrize("target, when, committed", [
    ("ingest.transcribe:Transcriber._collect", "after", False),   # mid-transcription, before translation
    ("index.vectors:_fsync_dir", "before", False),                # vector files written, not yet synced
    ("index.vectors:SegmentedVectors.write", "after", False),     # vectors saved, catalog not committed
    ("index.keywords:TantivyKeywords.add", "before", True),       # catalog committed, keyword index not
], ids=["transcribing", "saving-vectors", "before-catalog-commit", "before-keyword-index"])
def test_an_ingest_killed_at_any_point_leaves_a_consistent_library(base_library, tmp_path, target, when, committed):
    library = tmp_path / "lib"
    shutil.copytree(base_library, library)
    killed = subprocess.run([sys.executable, "-c", KILL_AT, target, when, "ingest", str(TALK), "--library", str(library),
                             "--title", "5G pilots"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    checked = talksearch(library, "check")
    assert checked.returncode == 0 and "no problems found" in checked.stdout, checked.stdout + checked.stderr
    titles = recordings(library)
    assert "Korean platform" in titles  # every completed recording is present
    assert ("5G pilots" in titles) == committed  # the killed one is whole or absent, never half-indexed

    found = talksearch(library, "search", "주민을 위한 디지털 플랫폼", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["recording_id"] == titles["Korean platform"]

    again = talksearch(library, "ingest", str(TALK), "--title", "5G pilots")
    assert again.returncode == 0, again.stderr
    after = talksearch(library, "list", "--json")
    assert [r["title"] for r in json.loads(after.stdout)].count("5G pilots") == 1
    hits = json.loads(talksearch(library, "search", "5G pilots", "--json").stdout)
    assert hits[0]["recording_id"] == recordings(library)["5G pilots"]
    assert talksearch(library, "check").returncode == 0
