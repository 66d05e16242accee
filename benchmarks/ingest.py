"""Ingest speed and memory: transcription plus English rendering through the real Transcriber,
today's settings and the previous ones side by side in one run (the machine may be shared and
noisy: only ratios from the same run carry a claim).

- ``speed`` (default): English, Russian and Korean material (the demo talks, and the shared
  fixtures when present) tiled to ``--minutes`` each and written to FLAC; each language is
  ingested by the baseline (the whole file decoded into memory and the settings of ``BASELINE``:
  the path before windows) and by the current path (an
  AudioSource read in windows, current WhisperSettings), alternately (``--repeat N`` times,
  the fastest run of each counting), each in a fresh process so that peak memory is its own. Reports real-time factor, peak RSS, character error rate against
  the scripts, word timestamps, detected language and whether the English rendering is there.
- ``--long MINUTES``: peak RSS and real-time factor of the windowed path on one long file
  (English demo talks tiled); ``--long-baseline`` measures the whole-file path on it as well.

Run: ``python -m benchmarks.ingest [--minutes 3] [--long 40] [--json OUT]``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from api.config import Settings
from api.demo_library import DEMO_DIR, demo_talks
from benchmarks.speech import character_error_rate, fixture_clips, write_flac
from ingest.media import SAMPLE_RATE, AudioSource, load_audio
from ingest.transcribe import Transcriber, WhisperSettings

LANGUAGES = ("en", "ru", "ko")
# The path before windows: every temperature retried, translation free to loop, the language
# of every 10-s window heard, each window decoded whole.
BASELINE = {"temperatures": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), "translate_no_repeat_ngram": 0, "main_probability": None, "parallel": 1,
            "translate_beam_size": 5}


def sources(language: str) -> list[tuple[Path, str]]:
    """(media file, the text spoken in it) for one language: demo talks, then fixtures if present."""
    return [(DEMO_DIR / t["file"], " ".join(t["sentences"])) for t in demo_talks()
            if t["media"] == "audio" and t["language"] == language] + fixture_clips(language)


def material(language: str, minutes: float, folder: Path) -> tuple[Path, str] | None:
    """The language's clips, one second apart, repeated whole until ``minutes`` are reached."""
    clips = sources(language)
    if not clips:
        return None
    pause = np.zeros(SAMPLE_RATE, dtype=np.float32)
    once = np.concatenate([part for path, _ in clips for part in (load_audio(path), pause)])
    repeats = max(1, int(np.ceil(minutes * 60 * SAMPLE_RATE / once.size)))
    path = folder / f"{language}_{minutes:g}min.flac"
    write_flac(path, np.tile(once, repeats))
    return path, " ".join([" ".join(text for _, text in clips)] * repeats)


def peak_rss_kib() -> int:
    """This process's own peak resident memory. Not ``ru_maxrss``: Linux carries that over from the
    parent through fork and exec, so a child measured after the parent tiled three hours of audio
    reported the parent's 2.1 GB."""
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))


def _measure(path: str, path_kind: str, settings: dict, reference: str, queue) -> None:
    """Child process: ingest one file one way; report time, memory and quality."""
    transcriber = Transcriber(WhisperSettings(**settings))
    transcriber.warm_up()
    started = time.perf_counter()
    audio = load_audio(Path(path)) if path_kind == "whole" else AudioSource(Path(path))
    transcript = transcriber(audio)
    elapsed = time.perf_counter() - started
    text = " ".join(s.text for s in transcript.segments)
    queue.put({
        "seconds": round(elapsed, 2), "audio_seconds": round(transcript.duration, 2),
        "rtf": round(elapsed / transcript.duration, 4),
        "peak_rss_mib": round(peak_rss_kib() / 1024),
        "language": transcript.language, "segments": len(transcript.segments),
        "words_timed": sum(len(s.words) for s in transcript.segments),
        "english_pieces": len(transcript.translation),
        "cer": round(character_error_rate(text, reference), 4) if reference else None,
    })


def measure(path: Path, path_kind: str, settings: WhisperSettings, reference: str = "") -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_measure, args=(str(path), path_kind, asdict(settings), reference, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="audio per language in the speed comparison")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path per language; the fastest counts")
    parser.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated, of en, ru, ko")
    parser.add_argument("--long", type=float, metavar="MINUTES", help="also measure peak memory on one file this long")
    parser.add_argument("--long-baseline", action="store_true", help="with --long: the whole-file path too (slow)")
    parser.add_argument("--skip-speed", action="store_true", help="only the --long measurement")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    current = Settings.from_env().whisper
    baseline = replace(current, **BASELINE)
    report: dict = {"settings": {"current": asdict(current), "baseline": asdict(baseline)}, "speed": {}, "long": None}
    with tempfile.TemporaryDirectory(prefix="talksearch-ingest-bench-") as tmp:
        folder = Path(tmp)
        if not args.skip_speed:
            print(f"{'lang':4s} {'path':8s} {'audio s':>8s} {'RTF':>6s} {'peak MiB':>8s} {'CER':>6s} {'words':>6s} {'en':>4s} lang")
            for language in args.languages.split(","):
                made = material(language, args.minutes, folder)
                if made is None:
                    print(f"{language}: no material (fixtures absent?)")
                    continue
                path, reference = made
                runs: dict[str, list[dict]] = {"baseline": [], "current": []}
                for _ in range(args.repeat):  # alternating, so both meet the same background load
                    runs["baseline"].append(measure(path, "whole", baseline, reference))
                    runs["current"].append(measure(path, "windows", current, reference))
                rows: dict = {name: min(results, key=lambda r: r["rtf"]) for name, results in runs.items()}
                rows["rtf_runs"] = {name: [r["rtf"] for r in results] for name, results in runs.items()}
                rows["rtf_ratio"] = round(rows["baseline"]["rtf"] / rows["current"]["rtf"], 2)
                report["speed"][language] = rows
                for name in ("baseline", "current"):
                    r = rows[name]
                    print(f"{language:4s} {name:8s} {r['audio_seconds']:8.0f} {r['rtf']:6.3f} {r['peak_rss_mib']:8d} "
                          f"{r['cer']:6.3f} {r['words_timed']:6d} {r['english_pieces']:4d} {r['language']}")
                print(f"{language:4s} speed-up x{rows['rtf_ratio']}")
        if args.long:
            made = material("en", args.long, folder)
            assert made is not None  # the English demo talks ship with the project
            path, reference = made
            report["long"] = {"windows": measure(path, "windows", current, reference)}
            if args.long_baseline:
                report["long"]["baseline"] = measure(path, "whole", baseline, reference)
            for name, r in report["long"].items():
                print(f"long file, {name}: {r['audio_seconds'] / 60:.0f} min, RTF {r['rtf']:.3f}, "
                      f"peak RSS {r['peak_rss_mib']} MiB, CER {r['cer']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
