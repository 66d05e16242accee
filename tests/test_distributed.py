"""Ingest on a real Ray cluster (``ray start --head`` in a subprocess, joined by address) with the
real whisper and embedding models: several files through the command line, a worker killed while
it transcribes, and no Ray at all without ``--ray``."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from api.cli import main
from ingest.media import SAMPLE_RATE, load_audio
from tests.helpers import DEMO, wait_for_job, write_wav

TALKS = ("en_5g_pilots", "en_ai_urban_services", "en_open_data_portal")
pytestmark = pytest.mark.usefixtures("models")  # the driver's embedder is the session's; Ray's workers load their own


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """The first 12 s (two or three sentences) of three spoken demo talks."""
    folder = tmp_path_factory.mktemp("clips")
    return [write_wav(folder / f"{name}.wav", load_audio(DEMO / f"{name}.opus")[: 12 * SAMPLE_RATE]) for name in TALKS]


@pytest.fixture(scope="module")
def head():
    """A Ray head with 2 CPUs in its own process group, behind a token of its own (not the user's
    ~/.ray one); yields (address, its process)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "token")  # read once, when Ray is first imported
    patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="ts-ray-", dir="/tmp")  # Ray's socket paths must stay short
    ray_bin = Path(sys.executable).with_name("ray")
    process = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", "--port=0", "--num-cpus=2", "--node-ip-address=127.0.0.1",
         f"--temp-dir={temp}", "--disable-usage-stats", "--include-dashboard=false", "--dashboard-port=0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    address = None
    for line in process.stdout:
        found = re.search(r"ray start --address='[^:]+:(\d+)'", line)
        if found:
            address = f"127.0.0.1:{found.group(1)}"
            break
    assert address, "ray start did not print its address"
    threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its pipe drained
    yield address, process
    process.send_signal(signal.SIGTERM)  # --block: the head takes its raylet and workers with it
    process.wait(60)
    patch.undo()
    shutil.rmtree(temp, ignore_errors=True)


def descendants(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(c) for child in children for c in [child, *map(str, descendants(int(child)))]]


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_files_ingested_on_the_cluster_once_each_and_searchable(head, clips, tmp_path, capsys):
    address, _ = head
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    library = tmp_path / "lib"
    code = main(["ingest", *map(str, clips), str(broken), str(clips[0]), "--ray", address, "--library", str(library)])
    out, err = capsys.readouterr()
    assert code == 1  # one file failed; the others are in
    errors = [line for line in err.splitlines() if line.startswith("talksearch: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"talksearch: error: {broken}: "), err
    assert "2 Ray workers on 1 node" in out
    assert out.count("added ") == 3 and "already in the library" in out
    assert main(["list", "--json", "--library", str(library)]) == 0
    listed = capsys.readouterr().out
    assert sorted(re.findall(r'"title": "([^"]+)"', listed)) == sorted(name.replace("_", " ") for name in TALKS)
    assert main(["search", "five G base stations on rooftops", "--json", "--k", "1", "--library", str(library)]) == 0
    assert '"title": "en 5g pilots"' in capsys.readouterr().out
    # the driver tells speakers apart on the whole file: the one synthetic voice is one speaker
    assert main(["speakers", "en 5g pilots", "--json", "--library", str(library)]) == 0
    assert [v["label"] for v in json.loads(capsys.readouterr().out)] == ["SPEAKER_1"]


def test_a_worker_killed_mid_task_is_restarted_and_every_file_stored_once(head, clips, real_settings, tmp_path):
    from api.service import Talksearch
    from ingest.records import Metadata

    address, process = head
    long_talk = DEMO / "en_ai_urban_services.opus"  # 40 s: a worker is caught transcribing it
    files = [long_talk, clips[0], clips[2]]
    app = Talksearch(real_settings.changed(library=tmp_path / "lib", ray=address, ray_workers=2))
    killed: list[int] = []

    def kill_a_transcribing_worker() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            busy = [pid for pid in descendants(process.pid) if title(pid).startswith("ray::Worker.transcribe")]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.05)

    try:
        cluster = app.cluster
        before = {pid for _, pid in cluster.places}
        killer = threading.Thread(target=kill_a_transcribing_worker)
        killer.start()
        results = list(cluster.ingest([(path, Metadata(), None) for path in files]))
        killer.join()
        after = {pid for _, pid in ray_places(cluster)}
    finally:
        app.close()
    assert killed and killed[0] in before and killed[0] not in after  # Ray started a new worker in its place
    assert [r.added for r in results] == [True, True, True], results
    recordings = app.recordings()
    assert sorted(r.source for r in recordings) == sorted(str(path.resolve()) for path in files)
    assert len({r.content_hash for r in recordings}) == 3


def ray_places(cluster) -> list[tuple[str, int]]:
    import ray

    return ray.get([worker.ready.remote() for worker in cluster.workers])


def test_without_ray_flag_ray_is_never_imported(clips, tmp_path):
    script = ("import sys; from api.cli import main; code = main(sys.argv[1:]); "
              "assert 'ray' not in sys.modules, 'ray was imported'; sys.exit(code)")
    env = {k: v for k, v in os.environ.items() if k != "TALKSEARCH_RAY"}
    done = subprocess.run([sys.executable, "-c", script, "ingest", str(clips[1]), "--library", str(tmp_path / "lib")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "added " in done.stdout


def test_server_uploads_are_transcribed_on_the_cluster(head, clips, real_settings, tmp_path):
    """TALKSEARCH_RAY for the server: an upload's job runs on the cluster's workers and its
    progress and result come back through the job as for a local one."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    address, process = head
    settings = real_settings.changed(library=tmp_path / "lib", ray=address, ray_workers=1)
    workers = lambda: {pid for pid in descendants(process.pid) if title(pid).startswith("ray::Worker")}  # noqa: E731
    before = workers()
    with TestClient(create_app(settings), base_url="http://localhost", client=("127.0.0.1", 50000)) as client:
        accepted = client.post("/recordings", files={"file": ("open data.wav", clips[2].read_bytes(), "audio/wav")},
                               data={"hotwords": "open data portal"})  # the upload's glossary travels to the workers
        assert accepted.status_code == 202, accepted.text
        job = wait_for_job(client.get, accepted.json()["id"])
        assert job["state"] == "done" and job["progress"] == 1.0, job
        assert workers() - before  # the server started its worker on the cluster: the job ran there
        [hit] = client.get("/search", params={"q": "open data portal", "k": 1}).json()
        assert hit["recording_id"] == job["recording_id"] and hit["title"] == "open data"
