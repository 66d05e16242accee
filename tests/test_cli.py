"""The command line: every command, and every bad input ends in one line on stderr, a non-zero
exit, and an unchanged library."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from api.cli import main, mmss
from tests.helpers import DEMO, ROOT, run_cli, write_wav

KO_SRT = DEMO / "ko_digital_platform.srt"
KO_EN_SRT = DEMO / "ko_digital_platform.en.srt"


def library_state(folder) -> tuple:
    """What must not change when a command fails: catalog rows and the vector segment files."""
    from index.catalog import Catalog

    catalog = Catalog(folder / "catalog.sqlite")
    counts = catalog.counts()
    catalog.close()
    segments = sorted((folder / "vectors").glob("seg-*")) if (folder / "vectors").exists() else []
    return counts, [(p.name, p.read_bytes()) for p in segments]


@pytest.fixture(scope="module")
def imported_library(models, tmp_path_factory):
    """A library holding the Korean demo transcript, imported through the CLI (real embeddings)."""
    folder = tmp_path_factory.mktemp("cli") / "lib"
    code = main(["import-transcript", str(KO_SRT), "--translation", str(KO_EN_SRT), "--title", "디지털 플랫폼",
                 "--speaker", "김서연", "--library", str(folder)])
    assert code == 0
    return folder


def test_mmss():
    assert mmss(0) == "00:00" and mmss(83.9) == "01:23" and mmss(3723) == "1:02:03"


def test_list_show_export(imported_library, capsys, tmp_path):
    lib = str(imported_library)
    code, out, _ = run_cli(capsys, "list", "--json", "--library", lib)
    [recording] = json.loads(out)
    assert code == 0 and recording["language"] == "ko" and recording["speaker"] == "김서연"
    code, out, _ = run_cli(capsys, "show", recording["id"][:6], "--library", lib)
    assert code == 0 and "00:00–00:0" in out and "세종시" in out and "Sejong" in out
    for fmt in ("srt", "vtt", "json"):
        target = tmp_path / f"out.{fmt}"
        assert run_cli(capsys, "export", "디지털 플랫폼", "--format", fmt, "--output", str(target), "--library", lib)[0] == 0
        assert "세종시" in target.read_text(encoding="utf-8")
    exported = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert exported["segments"][0]["translation"].startswith("Hello")


def test_search_json_contract(imported_library, capsys):
    code, out, _ = run_cli(capsys, "search", "parking information", "--json", "--k", "2", "--library", str(imported_library))
    hits = json.loads(out)
    assert code == 0 and 1 <= len(hits) <= 2
    assert set(hits[0]) >= {"recording_id", "title", "source", "start", "end", "language", "text", "translation", "score"}
    assert "주차" in hits[0]["text"] and "parking" in hits[0]["translation"].lower()


def test_same_content_twice_is_a_no_op(imported_library, capsys):
    before = library_state(imported_library)
    code, out, _ = run_cli(capsys, "import-transcript", str(KO_SRT), "--library", str(imported_library))
    assert code == 0 and "already in the library" in out
    assert library_state(imported_library) == before


def test_delete_then_unknown(imported_library, capsys, tmp_path):
    copy = tmp_path / "lib"
    shutil.copytree(imported_library, copy)
    code, out, _ = run_cli(capsys, "delete", "디지털 플랫폼", "--library", str(copy))
    assert code == 0 and "deleted" in out
    assert library_state(copy)[0]["chunks"] == 0
    code, out, err = run_cli(capsys, "search", "parking", "--json", "--library", str(copy))
    assert code == 0 and json.loads(out) == [] and "is empty" in err  # no hits, as over HTTP, and why


@pytest.mark.parametrize("case", ["missing", "garbage", "silent", "unknown-format", "folder-without-media"])
def test_bad_media_fails_cleanly(imported_library, capsys, tmp_path, case):
    path = tmp_path / {"missing": "nope.wav", "garbage": "noise.mp4", "silent": "quiet.wav",
                       "unknown-format": "slides.pdf", "folder-without-media": "empty"}[case]
    if case == "garbage":
        path.write_bytes(os.urandom(40_000))
    elif case == "silent":
        write_wav(path, np.zeros(16000 * 4))
    elif case == "unknown-format":
        path.write_bytes(b"%PDF-1.4 not media")
    elif case == "folder-without-media":
        path.mkdir()
    before = library_state(imported_library)
    code, _, err = run_cli(capsys, "ingest", str(path), "--library", str(imported_library))
    assert code == 1
    assert err.startswith("talksearch: error:") and err.count("\n") == 1 and path.name in err
    assert library_state(imported_library) == before


@pytest.mark.parametrize("args,message", [
    (["show", "no-such-talk"], "no recording 'no-such-talk'"),
    (["export", "no-such-talk", "--format", "srt"], "no recording"),
    (["delete", "no-such-talk"], "no recording"),
    (["search", "   "], "empty query"),
    (["import-transcript", "nope.srt"], "no such file"),
    (["export", "디지털 플랫폼", "--format", "srt", "--output", "/no/such/folder/out.srt"], "No such file or directory: /no/such/folder"),
    (["demo", "--fresh"], "holds other recordings too (디지털 플랫폼): refusing to delete it"),
])
def test_user_errors_are_one_line(imported_library, capsys, args, message):
    before = library_state(imported_library)
    code, _, err = run_cli(capsys, *args, "--library", str(imported_library))
    assert code == 1 and message in err and err.count("\n") == 1
    assert library_state(imported_library) == before


def test_other_embedding_model_is_refused(imported_library, capsys):
    code, _, err = run_cli(capsys, "search", "parking", "--embed-model", "some/other-model", "--library", str(imported_library))
    assert code == 1 and "built with embedding model 'multilingual-e5-small'" in err


def test_console_script_runs_as_a_program(imported_library):
    """The installed entry point, in a fresh process, as a user would run it."""
    result = subprocess.run([sys.executable, "-m", "api.cli", "search", "버스 도착 시간", "--k", "1", "--library", str(imported_library)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "대중교통" in result.stdout and "hits in" in result.stdout


def test_edit_metadata_then_filter_by_it(imported_library, capsys, tmp_path):
    copy = tmp_path / "lib"
    shutil.copytree(imported_library, copy)
    code, out, _ = run_cli(capsys, "edit", "디지털 플랫폼", "--event", "Forum 2026", "--date", "2026-03-19", "--library", str(copy))
    assert code == 0 and "Forum 2026" in out
    code, out, _ = run_cli(capsys, "search", "parking", "--event", "forum 2026", "--from", "2026-01-01", "--json", "--library", str(copy))
    assert code == 0 and json.loads(out)
    code, out, _ = run_cli(capsys, "search", "parking", "--to", "2025-12-31", "--json", "--library", str(copy))
    assert code == 0 and json.loads(out) == []
    code, _, err = run_cli(capsys, "edit", "디지털 플랫폼", "--date", "March 2026", "--library", str(copy))
    assert code == 1 and "YYYY-MM-DD" in err


def test_quoted_search_and_modes_from_the_command_line(imported_library, capsys):
    code, out, _ = run_cli(capsys, "search", '"실시간 주차 정보도"', "--json", "--library", str(imported_library))
    [hit] = json.loads(out)
    assert code == 0 and hit["text"].startswith("실시간 주차 정보도")
    code, out, _ = run_cli(capsys, "search", "주차를", "--mode", "lexical", "--json", "--library", str(imported_library))
    hits = json.loads(out)
    assert code == 0 and "주차" in hits[0]["text"]
    assert [hits[0]["text"][a:b] for a, b in hits[0]["highlights"]] == ["주차", "주차"]


def test_demo_fresh_deletes_only_a_library(capsys, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.txt").write_text("years of work")
    code, _, err = run_cli(capsys, "demo", "--fresh", "--library", str(precious))
    assert code == 1 and "is not a talksearch library: refusing to delete it" in err
    assert (precious / "chapter1.txt").read_text() == "years of work"


def test_check_reports_a_sound_library(imported_library, capsys):
    code, out, _ = run_cli(capsys, "check", "--library", str(imported_library))
    assert code == 0 and "1 recordings" in out and "no problems found" in out


def test_speakers_of_an_imported_transcript_are_listed_renamed_and_filtered_on(models, capsys, tmp_path):
    """A JSON transcript carries each segment's speaker (as the JSON export writes it)."""
    transcript = tmp_path / "panel.json"
    transcript.write_text(json.dumps({"language": "en", "segments": [
        {"start": 0, "end": 6, "text": "Welcome. Today we discuss the city budget for buses.", "speaker": "SPEAKER_1"},
        {"start": 6, "end": 14, "text": "The bicycle lanes downtown will double in length next year.", "speaker": "SPEAKER_2"},
        {"start": 14, "end": 20, "text": "Thank you. And what about trams and the budget?", "speaker": "SPEAKER_1"}]}))
    lib = str(tmp_path / "lib")
    assert run_cli(capsys, "import-transcript", str(transcript), "--library", lib)[0] == 0
    code, out, _ = run_cli(capsys, "speakers", "panel", "--library", lib)
    assert code == 0 and "SPEAKER_1" in out and "SPEAKER_2" in out and "bicycle lanes" in out
    code, out, _ = run_cli(capsys, "speakers", "panel", "--rename", "SPEAKER_2", "Elena Ivanova", "--json", "--library", lib)
    voices = {v["label"]: v for v in json.loads(out)}
    assert code == 0 and voices["SPEAKER_2"]["name"] == "Elena Ivanova" and voices["SPEAKER_1"]["name"] is None
    assert voices["SPEAKER_1"]["seconds"] == 12.0
    code, out, _ = run_cli(capsys, "search", "budget bicycle lanes", "--speaker", "Elena Ivanova", "--json", "--library", lib)
    hits = json.loads(out)
    assert code == 0 and hits and all(h["speaker"] == "Elena Ivanova" and "budget" not in h["text"] for h in hits)
    code, _, err = run_cli(capsys, "speakers", "panel", "--rename", "SPEAKER_7", "X", "--library", lib)
    assert code == 1 and "has no speaker 'SPEAKER_7'" in err and err.count("\n") == 1


def test_several_files_are_heard_two_at_once_stored_once_each_in_order(models, capsys, tmp_path, monkeypatch):
    """Short files (a window too short to cut into parts) are heard two at a time, so both cores
    work; a broken file fails alone with a line naming it, and a file given twice is stored once."""
    import threading

    from ingest.media import SAMPLE_RATE, load_audio

    names = ("en_5g_pilots", "en_ai_urban_services", "en_open_data_portal")
    clips = [write_wav(tmp_path / f"{name}.wav", load_audio(DEMO / f"{name}.opus")[: 10 * SAMPLE_RATE]) for name in names]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    hearing, most, lock = [0], [0], threading.Lock()
    real_run = models.transcriber.run

    def run(*args, **kwargs):  # the real model, counted while it hears
        with lock:
            hearing[0] += 1
            most[0] = max(most[0], hearing[0])
        try:
            return real_run(*args, **kwargs)
        finally:
            with lock:
                hearing[0] -= 1

    monkeypatch.setattr(models.transcriber, "run", run)
    library = tmp_path / "lib"
    code, out, err = run_cli(capsys, "ingest", str(clips[0]), str(broken), *map(str, clips[1:]), str(clips[0]),
                             "--library", str(library))
    assert code == 1  # one file failed; the others are in
    errors = [line for line in err.splitlines() if line.startswith("talksearch: error:")]
    assert len(errors) == 1 and broken.name in errors[0], err
    assert "5 files on this machine, 2 at once" in out and most[0] == 2
    added = [line.split("'")[1] for line in out.splitlines() if line.startswith("added ")]
    assert added == [name.replace("_", " ") for name in names]  # stored in the order given
    assert out.count("already in the library") == 1
    code, out, _ = run_cli(capsys, "search", "five G base stations on rooftops", "--json", "--k", "1", "--library", str(library))
    assert code == 0 and json.loads(out)[0]["title"] == "en 5g pilots"
