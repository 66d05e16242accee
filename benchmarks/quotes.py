"""Quotes that recognition misspelled: how often ``index.quotes.near`` finds a phrase that was
said, and how often it "finds" one that was not, on real recognised speech.

Phrases are 3-5 word runs of the reference texts (what was really said) of recordings in an
evaluation library (``tests/eval/README.md`` builds it: the demo talks and the shared fixtures,
transcribed by whisper base). A phrase is asked of its own recording's recognised words (it was
said there: the score should clear the threshold) and of every other recording in the same
language (it was not: the best score there should stay below). Recordings are split by name
into a tuning half, where the threshold is chosen (most phrases found that exact matching
misses, with at most 5% of the absent ones "found"), and a held-out half, reported beside it.

Run: ``python -m benchmarks.quotes --library /tmp/eval-lib [--json OUT]``
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from benchmarks import FIXTURES, ROOT
from core.language import normalise
from index.catalog import Catalog
from index.quotes import contains, near

THRESHOLDS = range(50, 96, 2)
MAX_FALSE = 0.05


def references() -> dict[str, str]:
    """What was said in each recording, by media file name: demo scripts and fixture texts."""
    said = {talk["file"]: " ".join(talk["sentences"])
            for talk in json.loads((ROOT / "api" / "demo" / "talks.json").read_text())["talks"] if talk.get("file")}
    for text in FIXTURES.glob("*/*.txt"):
        said[text.with_suffix(".flac").name] = text.read_text(encoding="utf-8")
    table = FIXTURES / "ko" / "zeroth" / "references.tsv"
    if table.exists():
        with table.open(encoding="utf-8") as rows:
            said.update({row["file"]: row["reference"] for row in csv.DictReader(rows, delimiter="\t")})
    return said


def phrases(text: str, step: int = 3) -> list[str]:
    """Runs of 3, 4 or 5 words (in turn), starting every ``step`` words."""
    words = normalise(text).split()
    runs = []
    for start in range(0, max(1, len(words) - 2), step):
        size = 3 + start % 3
        if start + size <= len(words):
            runs.append(" ".join(words[start: start + size]))
    return runs


def measure(library: Path) -> dict:
    catalog = Catalog(library / "catalog.sqlite")
    said = references()
    talks = []
    for recording in catalog.recordings():
        name = Path(recording.source).name
        transcript = catalog.transcript(recording.id)
        if name in said and transcript is not None and transcript.segments and transcript.segments[0].words:
            talks.append((name, recording.language, [w for s in transcript.segments for w in s.words]))
    talks.sort()
    rows = []
    for index, (name, language, words) in enumerate(talks):
        recognised = " ".join(w.text for w in words)
        others = [w for n, lang, w in talks if lang == language and n != name]
        for phrase in phrases(said[name]):
            own = near(words, phrase, 0)
            elsewhere = max((found[2] for w in others if (found := near(w, phrase, 0))), default=0.0)
            rows.append({"part": "tuning" if index % 2 == 0 else "held-out", "language": language,
                         "exact": contains(recognised, phrase), "said": own[2] if own else 0.0, "absent": elsewhere})
    return {"recordings": len(talks), "rows": rows}


def rates(rows: list[dict], threshold: float) -> dict:
    missed = [r for r in rows if not r["exact"]]
    return {"phrases": len(rows), "exact_found": round(sum(r["exact"] for r in rows) / max(1, len(rows)), 3),
            "misspelled": len(missed),
            "misspelled_found": round(sum(r["said"] >= threshold for r in missed) / max(1, len(missed)), 3),
            "said_found": round(sum(r["exact"] or r["said"] >= threshold for r in rows) / max(1, len(rows)), 3),
            "absent_found": round(sum(r["absent"] >= threshold for r in rows) / max(1, len(rows)), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", type=Path, required=True, help="an evaluation library (tests/eval/README.md)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    measured = measure(args.library)
    tuning = [r for r in measured["rows"] if r["part"] == "tuning"]
    allowed = [t / 100 for t in THRESHOLDS if rates(tuning, t / 100)["absent_found"] <= MAX_FALSE]
    chosen = max(allowed or [THRESHOLDS[-1] / 100], key=lambda t: (rates(tuning, t)["misspelled_found"], -t))
    report = {"recordings": measured["recordings"], "threshold": chosen, "parts": {}}
    for part in ("tuning", "held-out"):
        rows = [r for r in measured["rows"] if r["part"] == part]
        report["parts"][part] = {"all": rates(rows, chosen),
                                 **{language: rates([r for r in rows if r["language"] == language], chosen)
                                    for language in sorted({r["language"] for r in rows})}}
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
