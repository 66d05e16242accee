"""Transcript trust: how much of the speech Whisper gets right, how much text it invents after the
speech, and how much speech it refuses, for the current settings and named variants side by side
in one run (the machine may be shared: each clip is transcribed by every variant in turn, so all
meet the same load).

Every clip with a reference text in the shared fixtures (the 20 Zeroth Korean read-news clips and
the ko/ru/en clips) goes through the real Transcriber as ingest uses it (an AudioSource read in
windows; no English rendering, which does not touch the transcript). Per language and variant:

- ``cer``: character error rate (``benchmarks.speech``: edits over letters, case, spaces and
  punctuation ignored), edits summed over the clips per reference letter.
- ``tail``: letters the transcript has after the end of the reference: the insertions at the end
  of the same edit alignment. Text timed after the speech cannot serve here, since Whisper stamps
  invented words on the audio's last frame; the alignment counts them whatever their times.
- ``refused``: clips answered "no speech found".
- ``rtf``: transcription seconds over audio seconds.

``--conditions`` also makes each clip harder: ``quiet`` puts it at -45 dBFS over pink noise 5 dB
below it (a far microphone in a meeting room), ``trailing`` follows it with 20 s of that noise
alone (where Whisper invents endings).

Run: ``python -m benchmarks.asr [--compare NAME,...] [--conditions recorded,quiet,trailing] [--json OUT]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from api.config import Settings
from benchmarks.speech import character_errors, fixture_clips, letters, write_flac
from core.errors import NoSpeechError
from ingest.media import SAMPLE_RATE, AudioSource, load_audio
from ingest.transcribe import Transcriber, WhisperSettings

LANGUAGES = ("ko", "ru", "en")
CONDITIONS = ("recorded", "quiet", "trailing")
# Changes to the current settings, by name; "current" is always measured.
VARIANTS: dict[str, dict] = {
    "before": {"untimed_share": None},
    "vad-0.35": {"vad_threshold": 0.35},
    "vad-silence-500": {"vad_min_silence_ms": 500},
    "silence-off": {"hallucination_silence": None},
    "retry": {"retry_temperatures": (0.2, 0.4, 0.6, 0.8, 1.0)},
    "no-loop-retry": {"loop_retry_temperatures": ()},
}
# The quiet condition: speech level (RMS, dBFS) and how far below it the noise is (dB).
_QUIET_DBFS, _SNR_DB, _TRAILING_SECONDS = -45.0, 5.0, 20.0


def pink_noise(size: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise whose power falls as 1/f, as room noise does."""
    spectrum = np.fft.rfft(rng.standard_normal(size))
    spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
    noise = np.fft.irfft(spectrum, size)
    return noise / np.sqrt(np.mean(np.square(noise)))


def harder(samples: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The clip as ``condition`` makes it (see the module docstring)."""
    if condition == "recorded":
        return samples
    speech = samples / np.sqrt(np.mean(np.square(samples))) * 10 ** (_QUIET_DBFS / 20)
    floor = 10 ** ((_QUIET_DBFS - _SNR_DB) / 20)
    if condition == "quiet":
        return (speech + floor * pink_noise(speech.size, rng)).astype(np.float32)
    return np.concatenate([samples, floor * pink_noise(int(_TRAILING_SECONDS * SAMPLE_RATE), rng)]).astype(np.float32)


def clips(languages: list[str]) -> list[tuple[str, Path, str]]:
    """(language, media file, reference text) of every fixture clip with a reference."""
    return [(language, path, text) for language in languages for path, text in fixture_clips(language)]


def transcribe(transcriber: Transcriber, path: Path) -> tuple[str | None, float]:
    """(transcript text or None when refused, seconds taken); the language is detected, as ingest
    does when none is given."""
    started = time.perf_counter()
    try:
        transcript = transcriber(AudioSource(path), translate=False)
    except NoSpeechError:
        return None, time.perf_counter() - started
    return " ".join(s.text for s in transcript.segments), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", default="before", help=f"variants measured beside current, of {', '.join(VARIANTS)}")
    parser.add_argument("--conditions", default="recorded", help=f"comma-separated, of {', '.join(CONDITIONS)}")
    parser.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated, of ko, ru, en")
    parser.add_argument("--show", action="store_true", help="print each clip's transcript")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    current = Settings.from_env().whisper
    names = ["current"] + [name for name in args.compare.split(",") if name]
    unknown = [n for n in names[1:] if n not in VARIANTS] + [c for c in args.conditions.split(",") if c not in CONDITIONS]
    if unknown:
        parser.error(f"unknown variant or condition: {', '.join(unknown)}")
    settings: dict[str, WhisperSettings] = {"current": current, **{n: replace(current, **VARIANTS[n]) for n in names[1:]}}
    transcribers = {name: Transcriber(s) for name, s in settings.items()}
    for transcriber in transcribers.values():
        transcriber.warm_up()
    found = clips(args.languages.split(","))
    if not found:
        print("no fixture clips with references (is ../shared/fixtures there?)")
        return 1
    totals: dict = {}
    with tempfile.TemporaryDirectory(prefix="talksearch-asr-bench-") as tmp:
        for condition in args.conditions.split(","):
            rng = np.random.default_rng(0)
            for language, source, reference in found:
                path = source
                if condition != "recorded":
                    path = Path(tmp) / f"{condition}_{source.stem}.flac"
                    write_flac(path, harder(load_audio(source), condition, rng))
                seconds = load_audio(path).size / SAMPLE_RATE
                for name, transcriber in transcribers.items():
                    text, took = transcribe(transcriber, path)
                    edits, tail = character_errors(text or "", reference)
                    row = totals.setdefault(condition, {}).setdefault(language, {}).setdefault(
                        name, {"clips": 0, "letters": 0, "edits": 0, "tail": 0, "refused": 0, "audio_s": 0.0, "took_s": 0.0})
                    row["clips"] += 1
                    row["letters"] += len(letters(reference))
                    row["edits"] += edits
                    row["tail"] += tail
                    row["refused"] += text is None
                    row["audio_s"] += seconds
                    row["took_s"] += took
                    if args.show:
                        print(f"{condition} {source.name} {name}: {text!r} (tail {tail})")
    print(f"{'condition':9s} {'lang':4s} {'variant':16s} {'clips':>5s} {'CER':>6s} {'tail':>5s} {'refused':>7s} {'RTF':>6s}")
    for condition, languages in totals.items():
        for language, variants in languages.items():
            for name, row in variants.items():
                row["cer"] = round(row["edits"] / max(1, row["letters"]), 4)
                row["rtf"] = round(row["took_s"] / row["audio_s"], 4)
                print(f"{condition:9s} {language:4s} {name:16s} {row['clips']:5d} {row['cer']:6.3f} {row['tail']:5d} "
                      f"{row['refused']:7d} {row['rtf']:6.3f}")
    if args.json:
        report = {"settings": {name: asdict(s) for name, s in settings.items()}, "results": totals}
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
