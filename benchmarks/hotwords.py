"""What a glossary given at ingest changes: the same recordings transcribed without and with hot
words (``--hotwords`` / TALKSEARCH_HOTWORDS), side by side in one run.

For each recording the glossary is what a user ingesting it would know and type: the names and
terms of its title and programme. Reported per recording: how many glossary terms the transcript
holds (as keyword terms: Snowball stems and Korean morphemes, so «Казани» counts for «Казань»), the
character error rate against the script read, and the real-time factor of transcription alone.

    python -m benchmarks.hotwords [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from api.config import Settings
from api.demo_library import DEMO_DIR, demo_talks
from benchmarks import FIXTURES
from benchmarks.speech import character_error_rate
from index.lexical import Analyzer
from ingest.media import SAMPLE_RATE, load_audio
from ingest.transcribe import Transcriber

GLOSSARIES = {
    "ru_smart_traffic_lights.opus": "светофоры, Казань, перекрёстки",
    "ru_cybersecurity.opus": "кибербезопасность, злоумышленники, центр мониторинга",
    "en_5g_pilots.opus": "5G, Riverside, megabits",
    "en_ai_urban_services.opus": "artificial intelligence, water pipe failures, waste collection",
    "ru_festival.flac": "5G, Москва, Сеул, кибербезопасность, пленарное заседание",
}


def recordings() -> list[tuple[Path, str, str]]:
    """(file, script, glossary) for each recording with a glossary that is here."""
    scripts = {talk["file"]: " ".join(talk["sentences"]) for talk in demo_talks() if talk["media"] == "audio"}
    found = [(DEMO_DIR / name, scripts[name], GLOSSARIES[name]) for name in GLOSSARIES if name in scripts]
    festival = FIXTURES / "ru" / "ru_festival.flac"
    if festival.exists():
        found.append((festival, festival.with_suffix(".txt").read_text(encoding="utf-8"), GLOSSARIES[festival.name]))
    return found


def terms_held(analyzer: Analyzer, glossary: str, text: str) -> tuple[int, int]:
    """(glossary terms whose every keyword term the text holds, glossary terms)."""
    held = set(analyzer.keys(text))
    terms = [t.strip() for t in glossary.split(",") if t.strip()]
    return sum(set(analyzer.keys(t)) <= held for t in terms), len(terms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    plain = Settings.from_env().whisper
    transcriber, analyzer, rows = Transcriber(plain), Analyzer(), []
    variants = ("without", "with")
    print(f"{'recording':32s} {'hot words':9s} {'terms':>6s} {'CER':>6s} {'RTF':>6s}")
    for path, script, glossary in recordings():
        audio = load_audio(path)
        seconds = audio.size / SAMPLE_RATE
        for name in variants:  # one model, its settings swapped: only the hot words differ
            transcriber.settings = replace(plain, hotwords=glossary if name == "with" else None)
            started = time.perf_counter()
            transcript = transcriber(audio, translate=False)
            spent = time.perf_counter() - started
            text = " ".join(s.text for s in transcript.segments)
            held, total = terms_held(analyzer, glossary, text)
            row = {"recording": path.name, "hotwords": name, "glossary": glossary, "terms_held": held, "terms": total,
                   "cer": round(character_error_rate(text, script), 3), "rtf": round(spent / seconds, 3), "text": text}
            rows.append(row)
            print(f"{path.name:32s} {name:9s} {held:>3d}/{total:<2d} {row['cer']:6.3f} {row['rtf']:6.3f}", flush=True)
    for name in variants:
        mine = [r for r in rows if r["hotwords"] == name]
        print(f"{'all':32s} {name:9s} {sum(r['terms_held'] for r in mine):>3d}/{sum(r['terms'] for r in mine):<2d} "
              f"{sum(r['cer'] for r in mine) / len(mine):6.3f} {sum(r['rtf'] for r in mine) / len(mine):6.3f}")
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
