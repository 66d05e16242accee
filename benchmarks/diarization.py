"""Diarization error rate, speaker counting and cost, on recordings with known turns.

Test recordings are built from real and synthetic voices with known turn boundaries:

- real: the Zeroth-Korean reader (``ko/zeroth``: all 20 utterances have a median F0 of
  195-221 Hz and pairwise resemblyzer cosine 0.82-0.96, the range of one speaker, so they are
  one speaker here), Allison Smith (``en/en_asterisk_conf``) and Maxim Topal
  (``ru/ru_asterisk_conf``), cut at their pauses into utterances;
- synthetic: espeak-ng English variants (m1, m3, m7, f2, f4), festival + festvox-ru, and the
  Mimic 3 Korean and Russian voices of the fixtures.

Each recording is a concatenation (each speaker once) or an overlap-free interleaving
(8-12 turns of 1-2 utterances) of 2, 3 or 4 different speakers, with 0.3-1.0 s pauses between
turns. Two sets are drawn with different seeds: ``dev`` (the clustering threshold and the
voice-recognition threshold are tuned on it) and ``held-out`` (reported beside it, untouched
by tuning).

DER is frame-based (10 ms) with a 0.25 s collar around every reference turn boundary and the
best one-to-one mapping of found to true speakers (missed speech + false alarm + confusion,
over scored reference speech).

Voice recognition across recordings (a named voice proposed for a new cluster): the cosine of
every pair of found voices from two different recordings of a set, matched when both are the
same true speaker; ``RECOGNISED`` was chosen on ``dev`` (fewest mistakes) and is reported on both.

``--speed N`` also transcribes the first N held-out recordings with the real Transcriber and
reports diarization time as a share of transcription time.

Run: ``python -m benchmarks.diarization [--sets dev held-out] [--speed 3] [--json OUT]``
(needs ../shared/fixtures, espeak-ng, and festival with festvox-ru).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from benchmarks import FIXTURES
from ingest.diarize import RECOGNISED, Diarization, DiarizationSettings, ResemblyzerDiarizer, Turn, speech_spans
from ingest.media import SAMPLE_RATE, load_audio

COLLAR = 0.25
FRAME = 0.01
ENGLISH = [
    "The city council approved the new budget for public transport this morning.",
    "Our pilot project connects twelve schools to the fibre network by next spring.",
    "Residents can now report broken street lights through the mobile application.",
    "We measured the air quality at forty stations across the northern district.",
    "The water utility replaced old pipes before the winter season started.",
    "Traffic sensors help the buses keep their schedule during the rush hour.",
    "Open data about parking spaces is published every five minutes.",
    "Citizens voted for the park renovation in the participatory budget.",
    "The library now lends electric bicycles to anyone with a city card.",
    "Energy use in municipal buildings fell by a fifth over two years.",
    "Volunteers mapped every ramp and lift for wheelchair users downtown.",
    "The emergency service answers calls in eleven languages today.",
]
RUSSIAN = [
    "Городской совет утвердил новый бюджет на общественный транспорт.",
    "Датчики на перекрёстках помогают автобусам соблюдать расписание.",
    "Жители могут сообщить о поломке фонаря через мобильное приложение.",
    "Мы измерили качество воздуха на сорока станциях в северном районе.",
    "Водоканал заменил старые трубы до начала зимнего сезона.",
    "Открытые данные о парковках публикуются каждые пять минут.",
    "Библиотека выдаёт электрические велосипеды по карте горожанина.",
    "Потребление энергии в муниципальных зданиях снизилось на пятую часть.",
]
ESPEAK_VOICES = ("m1", "m3", "m7", "f2", "f4")


@dataclass
class Voice:
    name: str
    real: bool
    utterances: list[np.ndarray]


@dataclass
class Case:
    """One test recording: its samples and the true turns."""

    name: str
    audio: np.ndarray
    truth: list[Turn]

    @property
    def speakers(self) -> int:
        return len({t.speaker for t in self.truth})


def _trimmed(audio: np.ndarray) -> np.ndarray:
    spans = speech_spans(audio)
    if not spans:
        return audio
    return audio[int(spans[0][0] * SAMPLE_RATE):int(spans[-1][1] * SAMPLE_RATE)]


def _pieces(audio: np.ndarray, shortest: float = 2.0, longest: float = 8.0) -> list[np.ndarray]:
    """A long clip cut at its pauses into utterances of ``shortest``-``longest`` seconds."""
    result, start, last = [], None, None
    for a, b in speech_spans(audio):
        if start is None:
            start = a
        elif b - start > longest:
            result.append((start, last))
            start = a
        last = b
    if start is not None:
        result.append((start, last))
    return [audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] for a, b in result if b - a >= shortest]


def _synthesised(command: list[str], cache: Path, text: str) -> np.ndarray:
    key = hashlib.sha256((" ".join(command) + text).encode()).hexdigest()[:16]
    out = cache / f"{key}.wav"
    if not out.exists():
        if command[0] == "text2wave":
            source = cache / f"{key}.txt"
            source.write_text(text, encoding="utf-8")
            subprocess.run([*command, str(source), "-o", str(out)], check=True, capture_output=True)
        else:
            subprocess.run([*command, "-w", str(out), text], check=True, capture_output=True)
    return _trimmed(load_audio(out))


def voices(cache: Path) -> list[Voice]:
    """Every voice of the test set, each with its utterances."""
    found = [Voice("zeroth-reader", True, [_trimmed(load_audio(p)) for p in sorted((FIXTURES / "ko" / "zeroth").glob("*.flac"))]),
             Voice("allison-smith", True, _pieces(load_audio(FIXTURES / "en" / "en_asterisk_conf.flac"))),
             Voice("maxim-topal", True, _pieces(load_audio(FIXTURES / "ru" / "ru_asterisk_conf.flac"))),
             Voice("mimic3-kss", False, _pieces(load_audio(FIXTURES / "ko" / "mimic3_kss_rainbow.flac"))),
             Voice("mimic3-ru", False, _pieces(load_audio(FIXTURES / "ru" / "mimic3_ru_rainbow.flac")))]
    found += [Voice(f"espeak-{v}", False, [_synthesised(["espeak-ng", "-v", f"en+{v}", "-s", "155"], cache, t) for t in ENGLISH])
              for v in ESPEAK_VOICES]
    found.append(Voice("festival-ru", False,
                       [_synthesised(["text2wave", "-eval", "(voice_msu_ru_nsh_clunits)"], cache, t) for t in RUSSIAN]))
    return found


def build(pool: list[Voice], count: int, interleaved: bool, rng: np.random.Generator, name: str) -> Case:
    """``count`` speakers (at least one real voice) concatenated or interleaved."""
    real = [v for v in pool if v.real]
    chosen = [real[rng.integers(len(real))]]
    rest = [v for v in pool if v is not chosen[0]]
    chosen += [rest[i] for i in rng.choice(len(rest), count - 1, replace=False)]
    if interleaved:
        order = list(range(count)) + [int(rng.integers(count)) for _ in range(int(rng.integers(8, 13)) - count)]
        rng.shuffle(order)
        order = [s for i, s in enumerate(order) if i == 0 or s != order[i - 1]]
    else:
        order = list(rng.permutation(count))
    samples: list[np.ndarray] = []
    truth: list[Turn] = []
    at = 0.5
    samples.append(np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32))
    for speaker in order:
        voice = chosen[speaker]
        for _ in range(1 if interleaved and rng.random() < 0.5 else 2):
            utterance = voice.utterances[rng.integers(len(voice.utterances))]
            utterance = utterance / max(1e-6, float(np.abs(utterance).max())) * rng.uniform(0.3, 0.9)
            samples.append(utterance.astype(np.float32))
            truth.append(Turn(at, at + utterance.size / SAMPLE_RATE, voice.name))
            at += utterance.size / SAMPLE_RATE
            pause = rng.uniform(0.3, 1.0)
            samples.append(np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32))
            at += int(pause * SAMPLE_RATE) / SAMPLE_RATE
    audio = np.concatenate(samples)
    audio += rng.normal(0, 1e-3, audio.size).astype(np.float32)  # a noise floor, not digital silence
    return Case(name, audio, truth)


def cases(pool: list[Voice], seed: int, per_kind: int = 4) -> list[Case]:
    """``per_kind`` recordings for each of 2, 3 and 4 speakers, concatenated and interleaved."""
    rng = np.random.default_rng(seed)
    return [build(pool, n, inter, rng, f"{n}spk-{'inter' if inter else 'concat'}-{i}")
            for n in (2, 3, 4) for inter in (False, True) for i in range(per_kind)]


def _frames(turns: list[Turn], length: int) -> np.ndarray:
    """Per 10 ms frame, the index of the speaker talking (-1: nobody), speakers numbered in order."""
    names = {n: i for i, n in enumerate(dict.fromkeys(t.speaker for t in turns))}
    labels = np.full(length, -1)
    for t in turns:
        labels[int(round(t.start / FRAME)):int(round(t.end / FRAME))] = names[t.speaker]
    return labels


def der(truth: list[Turn], found: list[Turn], collar: float = COLLAR) -> float:
    """Diarization error rate of ``found`` against ``truth`` (no overlapped speech in either)."""
    length = int(np.ceil(max([t.end for t in truth + found]) / FRAME)) + 1
    ref, hyp = _frames(truth, length), _frames(found, length)
    scored = np.ones(length, dtype=bool)
    for t in truth:
        for edge in (t.start, t.end):
            scored[max(0, int(round((edge - collar) / FRAME))):int(round((edge + collar) / FRAME))] = False
    ref, hyp = ref[scored], hyp[scored]
    speech = int(np.sum(ref >= 0))
    missed = int(np.sum((ref >= 0) & (hyp < 0)))
    false_alarm = int(np.sum((ref < 0) & (hyp >= 0)))
    both = (ref >= 0) & (hyp >= 0)
    overlap = np.zeros((ref.max() + 1, max(hyp.max() + 1, 1)))
    np.add.at(overlap, (ref[both], hyp[both]), 1)
    rows, cols = linear_sum_assignment(-overlap)
    confusion = int(both.sum() - overlap[rows, cols].sum())
    return (missed + false_alarm + confusion) / max(speech, 1)


def matched_voices(truth: list[Turn], found: Diarization) -> list[tuple[str, np.ndarray]]:
    """(true speaker, voice) for each found speaker, named after the true one it overlaps most."""
    result = []
    for label, voice in found.voices.items():
        overlap: dict[str, float] = {}
        for mine in (t for t in found.turns if t.speaker == label):
            for true in truth:
                overlap[true.speaker] = overlap.get(true.speaker, 0.0) + max(0.0, min(mine.end, true.end) - max(mine.start, true.start))
        result.append((max(overlap, key=overlap.__getitem__), voice))
    return result


def recognition(voices: list[list[tuple[str, np.ndarray]]], threshold: float | None = None) -> dict:
    """Voice matching across recordings: cosine of every pair of voices from two different
    recordings; a pair is a true match when both are the same real speaker. With no
    ``threshold``, the one that makes fewest mistakes on these pairs is chosen."""
    scores, same = [], []
    for i, first in enumerate(voices):
        for second in voices[i + 1:]:
            for name_a, a in first:
                for name_b, b in second:
                    scores.append(float(a @ b))
                    same.append(name_a == name_b)
    scores_a, same_a = np.array(scores), np.array(same)
    if threshold is None:
        candidates = np.round(np.arange(0.5, 1.0, 0.01), 2)
        threshold = float(min(candidates, key=lambda t: int(np.sum((scores_a >= t) != same_a))))
    accepted = scores_a >= threshold
    return {"threshold": threshold, "pairs": len(scores), "same_pairs": int(same_a.sum()),
            "true_accept": float(accepted[same_a].mean()) if same_a.any() else 0.0,
            "false_accept": float(accepted[~same_a].mean()) if (~same_a).any() else 0.0}


def evaluate(diarizer: ResemblyzerDiarizer, set_cases: list[Case], given: bool = False) -> dict:
    """DER per number of speakers, how often the count was right, and each case's voices."""
    rows, voices_found = [], []
    for case in set_cases:
        started = time.perf_counter()
        result = diarizer(case.audio, speakers=case.speakers if given else None)
        voices_found.append(matched_voices(case.truth, result))
        rows.append({"name": case.name, "speakers": case.speakers, "found": len(result.speakers),
                     "der": der(case.truth, result.turns), "seconds": time.perf_counter() - started,
                     "audio_seconds": case.audio.size / SAMPLE_RATE})
    summary = {}
    for n in sorted({r["speakers"] for r in rows}):
        picked = [r for r in rows if r["speakers"] == n]
        # a group's DER is the mean of its recordings' DERs
        summary[n] = {"recordings": len(picked), "der": float(np.mean([r["der"] for r in picked])),
                      "count_right": sum(r["found"] == n for r in picked) / len(picked)}
    return {"summary": summary, "rows": rows, "voices": voices_found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["dev", "held-out"], choices=["dev", "held-out"])
    parser.add_argument("--threshold", type=float, default=None, help="clustering threshold (default: the shipped one)")
    parser.add_argument("--per-kind", type=int, default=4, help="recordings per (speakers, concatenated/interleaved)")
    parser.add_argument("--speed", type=int, default=0, help="also transcribe N held-out recordings and time both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not FIXTURES.is_dir():
        print(f"speech fixtures not found at {FIXTURES}", file=sys.stderr)
        return 2
    settings = DiarizationSettings() if args.threshold is None else DiarizationSettings(threshold=args.threshold)
    diarizer = ResemblyzerDiarizer(settings)
    diarizer.warm_up()
    cache = Path(tempfile.gettempdir()) / "talksearch-diarization-voices"
    cache.mkdir(exist_ok=True)
    pool = voices(cache)
    report: dict = {"threshold": settings.threshold, "collar": COLLAR, "recognised": RECOGNISED, "sets": {}}
    seeds = {"dev": 1, "held-out": 2}
    for name in args.sets:
        set_cases = cases(pool, seeds[name], args.per_kind)
        estimated = evaluate(diarizer, set_cases)
        given = evaluate(diarizer, set_cases, given=True)
        voices_found = estimated.pop("voices")
        report["sets"][name] = {"estimated": estimated, "given": given["summary"],
                                "recognition": recognition(voices_found, RECOGNISED),
                                "best_recognition_threshold": recognition(voices_found)["threshold"]}
        for n, row in estimated["summary"].items():
            print(f"{name:9} {n} speakers: {row['recordings']:2} recordings  DER {row['der']:.1%} "
                  f"(speakers given: {given['summary'][n]['der']:.1%})  count right {row['count_right']:.0%}")
        known = report["sets"][name]["recognition"]
        print(f"{name:9} voice recognition at {RECOGNISED}: same speaker {known['true_accept']:.0%} of "
              f"{known['same_pairs']} pairs, other speaker {known['false_accept']:.1%} of "
              f"{known['pairs'] - known['same_pairs']} (fewest mistakes at {report['sets'][name]['best_recognition_threshold']})")
    if args.speed:
        report["speed"] = speed(diarizer, cases(pool, seeds["held-out"], args.per_kind)[:args.speed])
        print(f"diarization time / transcription time: {report['speed']['ratio']:.1%}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 0


def speed(diarizer: ResemblyzerDiarizer, picked: list[Case]) -> dict:
    """Seconds spent transcribing (real Transcriber, default settings) and diarizing the same audio."""
    from api.config import Settings
    from ingest.transcribe import Transcriber

    settings = Settings()
    transcriber = Transcriber(settings.whisper)
    transcriber.warm_up()
    spent = {"transcription": 0.0, "diarization": 0.0, "audio": 0.0}
    for case in picked:
        started = time.perf_counter()
        transcriber(case.audio, translate=settings.ingest.translate)
        spent["transcription"] += time.perf_counter() - started
        started = time.perf_counter()
        diarizer(case.audio)
        spent["diarization"] += time.perf_counter() - started
        spent["audio"] += case.audio.size / SAMPLE_RATE
    spent["ratio"] = spent["diarization"] / spent["transcription"]
    return spent


if __name__ == "__main__":
    sys.exit(main())
