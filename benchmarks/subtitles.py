"""Cross-lingual search on real talks nobody wrote queries for: the held-out check of the ranking.

Material: the PyCon Korea 2020 talks of ``../shared/fixtures/subtitles/pyconkr2020``, each with
English and Korean subtitles on one clock (two spoken in English, two in Korean, the other
language a human translation). Each subtitle file is imported as its own recording, with no
English rendering attached (the other file would give the answer away), so English ↔ Korean
is found by meaning alone; the Korean-only 2019 talks join as distractors. Files are copied into
the library's ``subtitles`` folder as ``TALK.LANG.srt``: every file is called ``en.srt`` or
``ko.srt``, and labels name recordings by file name.

Queries: a cue of one language asks for the same moment in the talk's other language, the cue's
span padded by ``TOLERANCE`` s each side (the two languages' cues are cut differently: one English
cue often covers two Korean ones), judged as in ``tests/eval`` (``evaluation.metrics``: at least
1 s shared). The search is filtered to the other language, as a user asking in English for the
Korean talk would; unfiltered, the query's own cue would answer it. Cues shorter than
``MIN_WORDS`` words (``MIN_HANGUL`` Hangul syllables for Korean), text said more than once in
that language ("감사합니다", "Thank you very much"), and cues wrapped in quotes (an exact-phrase
search) are skipped. ``--queries`` per direction are drawn with a fixed seed.

Reported per direction (``en→ko``, ``ko→en``) and mode, with the metrics of ``talksearch eval``:
R@1/5/10, MRR@10, nDCG@10, and rec-R@1, here the share of queries whose first hit is in the right
talk.

Nothing is tuned on it. Measured 2026-11-26 on the 2-core machine with other jobs running:
11 recordings, 1,475 chunks (13,759 vectors) built in 230 s; 100 queries per direction (of 1,455
English and 1,370 Korean cues that qualify). Hybrid / dense / keywords: en→ko R@1 0.56 / 0.59 /
0.01, R@10 0.91 / 0.91 / 0.08, right talk first 0.80 / 0.80 / 0.28; ko→en R@1 0.62 / 0.62 / 0.03,
R@10 0.86 / 0.86 / 0.11, right talk first 0.84 / 0.84 / 0.10. Hybrid's four losses to dense were
English words inside Korean cues (COVID-19, CircuitPython) matching other cues by keyword; such
matches across scripts no longer count (README: "Keywords across scripts").

Run: ``python -m benchmarks.subtitles [--queries N] [--library DIR] [--json OUT]`` (needs
../shared/fixtures; without ``--library`` it builds a throw-away library, with it the library is
built once and reused: about 25 s a run).
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from api.config import Settings
from api.render import console
from api.service import Talksearch
from benchmarks import FIXTURES
from core.language import normalise
from evaluation.metrics import LabelledQuery, Span, is_quote
from evaluation.runner import print_report, report, run_mode
from index.library import SEARCH_MODES
from ingest.records import Metadata, Segment
from ingest.subtitles import read_transcript

SUBTITLES = FIXTURES / "subtitles"
PAIRED, DISTRACTORS = SUBTITLES / "pyconkr2020", SUBTITLES / "pyconkr2019_ko_only"
TOLERANCE = 3.0  # seconds each side of the query's cue
MIN_WORDS, MIN_HANGUL = 5, 8
SEED = 2020
K = 10
_HANGUL = re.compile("[\uac00-\ud7a3]")

Talk = tuple[str, str]  # (talk, language): one recording


@dataclass(frozen=True)
class Asked:
    """A sampled query and the language its search is filtered to."""

    label: LabelledQuery
    language: str


def recording_name(talk: str, language: str) -> str:
    return f"{talk}.{language}.srt"


def subtitle_files(folders: list[Path]) -> dict[Talk, Path]:
    """Every ``TALK/LANG.srt`` under the folders."""
    return {(path.parent.name, path.stem): path for folder in folders for path in sorted(folder.glob("*/*.srt"))}


def long_enough(text: str, language: str) -> bool:
    return len(_HANGUL.findall(text)) >= MIN_HANGUL if language == "ko" else len(text.split()) >= MIN_WORDS


def sample_queries(cues: Mapping[Talk, list[Segment]], per_pair: int, seed: int = SEED) -> list[Asked]:
    """Up to ``per_pair`` queries for each direction between two recordings of one talk, the same
    ones for the same cues and seed. Talks in one language only give none, but their text counts
    when telling whether a cue's text is said elsewhere."""
    said = Counter((language, normalise(cue.text)) for (_, language), segments in cues.items() for cue in segments)
    pools: dict[str, list[Asked]] = {}
    for (talk, language), segments in sorted(cues.items()):
        for target in sorted(other for name, other in cues if name == talk and other != language):
            pair = f"{language}→{target}"
            pools.setdefault(pair, []).extend(
                Asked(LabelledQuery(cue.text, (Span(recording_name(talk, target), max(0.0, cue.start - TOLERANCE),
                                                    cue.end + TOLERANCE),), (pair,)), target)
                for cue in segments
                if long_enough(cue.text, language) and said[language, normalise(cue.text)] == 1 and not is_quote(cue.text))
    return [asked for pair, pool in sorted(pools.items()) for asked in random.Random(seed).sample(pool, min(per_pair, len(pool)))]


def build(app: Talksearch, files: Mapping[Talk, Path]) -> dict[Talk, list[Segment]]:
    """Import each file as its own recording (a no-op for one the library holds); returns each
    recording's cues as imported."""
    folder = app.settings.library / "subtitles"
    folder.mkdir(parents=True, exist_ok=True)
    cues = {}
    for (talk, language), path in files.items():
        staged = folder / recording_name(talk, language)
        shutil.copyfile(path, staged)
        app.import_transcript(staged, meta=Metadata(title=f"{talk} ({language})", language=language))
        cues[talk, language] = read_transcript(staged, language).segments
    return cues


def measure(settings: Settings, files: Mapping[Talk, Path], per_pair: int, modes: tuple[str, ...] = SEARCH_MODES) -> dict:
    """Build (or reuse) the library in ``settings.library`` and score the sampled queries per mode."""
    app = Talksearch(settings)
    started = time.perf_counter()
    cues = build(app, files)
    built = time.perf_counter() - started
    asked = sample_queries(cues, per_pair)
    if not asked:
        raise ValueError("no talk has subtitles in two languages: nothing to ask")
    labels, languages = [a.label for a in asked], [a.language for a in asked]
    result = report(labels, {mode: run_mode(app, labels, mode, K, languages) for mode in modes}, K)
    return {"library": {**app.stats(), "build_seconds": round(built, 1)}, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100, help="queries per direction (default 100)")
    parser.add_argument("--library", type=Path, help="build the library here, or reuse the one built here")
    parser.add_argument("--json", type=Path, help="also write the report here (with each query's rank)")
    args = parser.parse_args(argv)
    if args.queries < 1:
        parser.error("--queries must be at least 1")
    files = subtitle_files([PAIRED, DISTRACTORS])
    if not files:
        parser.error(f"no subtitles under {SUBTITLES}")
    with tempfile.TemporaryDirectory(prefix="talksearch-subtitles-") as scratch:
        settings = Settings.from_env().changed(library=args.library or Path(scratch) / "library")
        result = measure(settings, files, args.queries)
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    print_report(result, console)
    built = result["library"]
    print(f"library: {built['recordings']} recordings, {built['chunks']} chunks, built in {built['build_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
