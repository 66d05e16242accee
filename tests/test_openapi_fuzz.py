"""/openapi.json is what the server does: Schemathesis sends every operation generated valid and
invalid requests, and odd methods, in each access configuration (no key, a key, a key for reads too)
with all its checks on, and finds no server error and no answer the document does not describe.

Runs on the real app and models through ASGI, over a library of its own for each configuration,
since the run edits what it finds. Reads and edits are aimed at its real recordings half the time, so
those answers are checked too; deletes only at the one without media, so the rest stay to be read.
Bounded by FUZZ_EXAMPLES generated requests per operation in the fuzzing phase (about a minute in all);
the seed is new each run (fixed under CI) and printed with a failure (FUZZ_SEED repeats one)."""
from __future__ import annotations

import os
import random

import pytest
import schemathesis
from schemathesis.engine import events
from schemathesis.python import asgi

from api.app import create_app
from api.config import Settings
from api.service import Talksearch
from tests.helpers import API_KEY, DEMO, KOREAN, talk_metadata

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
ACCESS = {
    # The in-process client addresses the server as "testserver" from "testclient": that name is allowed,
    # and its changes are refused as coming from another machine, which the document says (403).
    "no key": ({"api_key": None, "allowed_hosts": (asgi.HOST,)}, {}),
    "key": ({"api_key": API_KEY}, {"X-API-Key": API_KEY}),
    "key for reads too": ({"api_key": API_KEY, "protect_reads": True}, {"X-API-Key": API_KEY}),
}
# Positive data that the server may still refuse, because no schema can say it: an upload must be
# media that decodes (or a well-formed transcript), a clip must end after it starts, within the recording.
UNDESCRIBABLE = [("POST /recordings", 415), ("POST /recordings/import", 415), ("GET /recordings/{recording_id}/clip", 400)]


def problems(schema) -> list[str]:
    """One line per distinct failed check or error of a Schemathesis run (as its command line runs it),
    with a request that shows it."""
    found = {}
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for node in (node for nodes in event.recorder.checks.values() for node in nodes if node.failure_info):
                failure = node.failure_info.failure
                found.setdefault(f"{failure.code} {failure.operation}: {failure.title}", node.failure_info.code_sample)
        elif isinstance(event, events.NonFatalError):
            found[f"error {event.label}: {event.value!r}"] = ""
        elif isinstance(event, events.FatalError):
            found[f"fatal: {event.exception!r}"] = ""
    return sorted(f"{what} {sample}".strip() for what, sample in found.items())


@pytest.fixture
def service(models, tmp_path) -> Talksearch:
    """The Korean talk twice: with media (played from a demo file, which a delete leaves alone) and without."""
    library = Talksearch(Settings.from_env({}, library=tmp_path / "library"))
    for media in (DEMO / "en_5g_pilots.opus", None):
        library.import_transcript(DEMO / KOREAN, media, talk_metadata(KOREAN), DEMO / "ko_digital_platform.en.srt")
    return library


@pytest.mark.parametrize("access", list(ACCESS))
def test_every_operation_answers_as_documented(service, access):
    settings, headers = ACCESS[access]
    # CI runs one fixed seed, so a landing never depends on luck; elsewhere each run explores anew.
    seed = int(os.environ.get("FUZZ_SEED") or (0 if os.environ.get("CI") else random.randrange(2**32)))
    app = create_app(service.settings.changed(**settings), service)
    config = schemathesis.Config.from_dict({
        "headers": headers,
        "checks": {"enabled": True},
        "phases": {"enabled": True},
        "seed": seed,
        "cache": {"enabled": False},  # else it leaves .schemathesis/ in the working tree
        # Credentials are the real key, sent as configured: generated ones prove nothing beside it.
        "generation": {"max-examples": FUZZ_EXAMPLES, "mode": "all", "with-security-parameters": False},
        "dictionaries": {"recordings": {"values": [recording.id for recording in service.recordings()]}},
        "operations": [
            {"include-method": ["GET", "PATCH"],
             "parameters": {"path.recording_id": {"dictionary": "recordings", "probability": 0.5}}},
            {"include-method": "DELETE",
             "parameters": {"path.recording_id": next(r.id for r in service.recordings() if not r.has_media)}},
            *({"include-name": operation,
               "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", status]}}}
              for operation, status in UNDESCRIBABLE),
        ],
    })
    try:
        assert problems(schemathesis.openapi.from_asgi("/openapi.json", app, config=config)) == [], f"FUZZ_SEED={seed}"
    finally:
        asgi.shutdown_lifespans()
