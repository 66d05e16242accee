"""Speech to timed text with faster-whisper: transcription with word timestamps, per-segment
language labels for talks that switch languages, and an English rendering by Whisper's
translate task for everything not spoken in English. A media file is handled a window at a
time (``AudioSource.windows``), so memory does not grow with the length of the recording.

Measured with whisper base (int8) on the 2-core development machine while it was shared
(load average 6-9, so absolute times are inflated; ratios from one run), English, Russian and
Korean material of 3-4 min (demo talks and the shared fixtures). ``python -m benchmarks.ingest
--minutes 2 --repeat 2``, real-time factor of transcription plus English rendering, the path
before windows -> now: English 0.162 -> 0.136 (x1.2), Russian 0.311 -> 0.255 (x1.22), Korean
0.605 -> 0.162 (x3.7), with character error rates unchanged (0.053, 0.046, 0.133), the same
words timed and the same languages detected. What changed, and what did not:

- Temperature fallback is off. Whisper retries a window at temperatures 0.2…1.0 (five
  samples each) when its text compresses like a loop or its mean log-probability is below -1.
  Korean→English translation by whisper base loops at temperature 0 in every 30-s window
  ("it is said that it is said…", compression ratios 14-32) and no retry did better, so each
  window cost six decodes of up to 448 tokens: 144 of the 188 s spent on 4 min of Korean.
  In Russian 7 of 43 transcribed and 14 of 36 translated segments were retried with nothing
  gained. Decoding at temperature 0 only left every transcript's character error rate as it
  was (en 0.050, ru 0.053, ko 0.138) and halved the Russian translate pass.
- The translate pass may not repeat a 3-word run (``no_repeat_ngram_size``): at temperature 0
  the first 100 s of Korean came out as three 30-s pieces, all loops; with the limit, 4 min
  gave 38 timed pieces (at most 16 s long), one of them a loop (dropped by the guards).
- Language relabelling heard every ≥10-s window (one encoder pass each, a third of the time
  for English). Each 30-s stretch is now heard once first and its windows are skipped when it
  is surely (p ≥ 0.9) the main language: 7-9 detections instead of 13-16 on these talks;
  a stretch across a switch (heard at p 0.77) is still checked window by window.
  Hearing those stretches still encoded their audio a second time. Now the language of each
  30-s window is read from the encoding the transcription makes anyway (``_WindowLanguages``:
  one decoder step), and only windows of segments not heard surely as the main language are
  encoded again. Same 2-4 min material, code before and after alternating in fresh processes
  (2026-11-26, quiet machine), RTF of transcription plus rendering (of it, language checks):
  Korean 0.150 (0.016), 0.142 (0.012) -> 0.136 (0.001), 0.136 (0.001); English 0.081 (0.016),
  0.079 (0.015) -> 0.068 (0.004), 0.069 (0.004).
- Each window is cut in a pause into two parts decoded at once, one CPU thread each
  (``WhisperSettings.parallel``): beam search on whisper base gains little from a second thread,
  so two parts on one thread each finish about twice as soon. Whole ingest of the same material,
  code before and after alternating (2026-11-26, quiet machine): Korean RTF 0.142 -> 0.071,
  Russian 0.155 -> 0.092, English 0.072 -> 0.046; character error rates no worse (ru 0.057 ->
  0.047, ko 0.210 -> 0.138, en 0.053 -> 0.047); 30 min of English peaked at 1,125 MiB against 991.
- Whisper's features are made 30 s at a time (``ingest/features.py``): faster-whisper's own
  spectrogram of a 5-minute part held ~260 MiB of FFT at once; 20 min of English now peaks at
  991 MiB instead of 1,125.
- Not adopted: faster-whisper's BatchedInferencePipeline was 1.3-1.4x faster but loses words:
  with timestamps it drops the text after each chunk's last timestamp (English CER 0.050 ->
  0.129), without them its segments are whole 30-s chunks and Russian CER went 0.053 -> 0.151.
  Beam 2 lost Russian words (CER 0.22); beam 3 read like beam 5 but its speed could not be
  told apart from noise on the shared machine, so beam 5 stays. A greedy translate pass alone
  (beam 1; 3 min of Russian, same process, alternating, machine busy) cut RTF 0.177 -> 0.151
  against 0.105 for transcription alone, but its English lost a sentence and turned "Kazan" into
  "the kitchen": not adopted either.
- The translate pass's beam is 2 (``translate_beam_size``; transcription keeps 5). Same
  2-minute material, one process, beams alternating (2026-11-26, quiet machine): translate pass
  RTF, Korean 0.060 / 0.059 / 0.048 and Russian 0.062 / 0.059 / 0.051 at beams 5 / 3 / 2; e5
  cosine of each English piece to the words it renders, Korean 0.795 / 0.792 / 0.786, Russian
  0.845 / 0.866 / 0.856. The development set on libraries built afresh with each (demo and
  fixtures), decided on its tuning part: hybrid R@1 0.945 → 0.964, R@5 0.964 → 0.982, MRR 0.952
  → 0.970 (one cross-lingual query found first); held-out R@1 0.848 → 0.848, R@5 0.935 → 0.935,
  MRR 0.880 → 0.877. «Казань» stays "Kazan".

Invented and refused speech, ``python -m benchmarks.asr --compare before,vad-0.35,vad-silence-500,silence-off``
(2026-11-26, the 2-core machine shared, load average 5-7: rows that decoded the same text differ
in RTF by up to 2x, so these runs support no speed claim), every fixture clip with a reference (ko: 20 Zeroth read-news clips and 3 others, ru 3,
en 1): character error rate, letters trailing the reference (``tail``), clips refused, RTF.

| ko CER / tail / RTF | ru CER / tail / RTF | en CER / RTF | settings |
|---|---|---|---|
| 0.148 / 0 / 0.495 | 0.086 / 46 / 0.258 | 0.000 / 0.122 | before |
| 0.148 / 0 / 0.488 | 0.046 / 0 / 0.300 | 0.000 / 0.124 | now: segments of timeless words dropped |
| 0.145 / 0 / 0.505 | 0.046 / 0 / 0.225 | 0.000 / 0.173 | now + VAD threshold 0.35 |
| 0.149 / 0 / 0.521 | 0.046 / 0 / 0.188 | 0.000 / 0.257 | now + VAD min silence 500 ms |
| 0.148 / 0 / 0.496 | 0.046 / 0 / 0.242 | 0.000 / 0.256 | now + hallucination_silence_threshold off |

No clip was refused. The one invented tail is the Russian rainbow clip's closing «Редактор
субтитров А.Синецкая Корректор В.Сухиашвили», its words stamped on the last frame; dropping
segments whose words mostly take no time (``ingest.guards.is_untimed``) removed it and nothing
else (every other transcript came out the same). The other levers changed no tail and no refusal
and are not adopted: VAD threshold 0.35 read 4 Korean clips differently for a net CER change of
-0.003, a 500-ms VAD pause 10 Korean clips for +0.001 (both within the noise of a few words), and
hallucination_silence_threshold off (or at 1 s, tried on the rainbow clip alone) changed nothing.
Cutting words timed outside the VAD's speech was not built: with ``vad_filter`` Whisper hears
only that speech, so its words cannot fall outside it (invented words are stamped on the last
frame of the speech heard).

Made harder (a second run, ``--compare before,vad-0.35 --conditions quiet,trailing``): ``quiet``
puts each clip at -45 dBFS over pink noise 5 dB below it, ``trailing`` follows it with 20 s of
that noise. Quiet: Korean CER 0.367 before and now, 0.360 with VAD threshold 0.35 (Russian 0.060,
English 0.010 for all three); one clip refused by all three. Trailing: Korean 0.142 / 0.142 /
0.150, Russian 0.085 (the credits again, tail 46) / 0.045 / 0.046, English 0.000; no other tail,
no refusal. The quiet refusal (Zeroth 0089) is not the VAD's doing: Silero hears the whole clip at
thresholds 0.5 down to 0.15. Whisper loops on it («검은색» eight times), the loop guard drops the
segment and nothing is left. VAD 0.35 helped on quiet clips and hurt after them, so it is not
adopted. Whisper's fallback for transcription only (``retry_temperatures`` 0.2…1.0, third run,
``--compare retry --conditions recorded,quiet``) reads that clip at temperature 0.6 («…강철…
선물입니까?», no refusal; quiet Korean CER 0.367 -> 0.353), but the low-confidence retries it also
makes cost the Russian phone prompts words (CER 0.046 -> 0.072 recorded, 0.060 -> 0.093 quiet)
and doubled Russian RTF (0.16 -> 0.33): not adopted. Instead only the stretches the loop guard
drops are decoded again at those temperatures (``loop_retry_temperatures``; looped segments less
than 1 s apart as one stretch: alone, the two halves of that clip looped again).
``--compare no-loop-retry --languages ko,ru --conditions recorded,quiet`` (2026-11-26, same
machine, quieter), current / without: recorded Korean CER 0.148 / 0.148 and Russian 0.046 /
0.046 (no stretch looped, nothing decoded again); quiet Korean 0.351 / 0.367 with 0 / 1 clips
refused (the looped clip now reads «…그 검은가 만들어내는 강철 …입니까?»), quiet Russian 0.060 /
0.060. Quiet Korean took RTF 0.251 / 0.208: the sampled retries cost time only where Whisper looped.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from functools import cache
from typing import Callable, Collection, Iterable

import numpy as np

from core.errors import ModelError, NoSpeechError, UserError
from .align import overlap
from .guards import is_repetition_loop, keep_segment
from .media import SAMPLE_RATE, AudioSource, pause_cut
from .records import Segment, Transcript, Word
from models.whisper import DEFAULT_WHISPER, default_models_dir, resolve_whisper

log = logging.getLogger(__name__)
# Shortest part a window is cut into for decoding at once (see WhisperSettings.parallel).
_MIN_PART_SECONDS = 60.0
# Seconds of speech no transcribed segment covers before that stretch is decoded again on its own.
MISSED_SECONDS = 3.0

Progress = Callable[[float], None]


@dataclass
class WhisperSettings:
    """How Whisper is run; defaults measured to be safe on a 2-core CPU with the base model."""

    model: str = DEFAULT_WHISPER
    cache_dir: Path = field(default_factory=default_models_dir)
    device: str = "cpu"
    compute_type: str = "int8"
    beam_size: int = 5
    # Beam of the translate pass (the English rendering): 2 renders as well as 5 did, 20% sooner
    # (see the module docstring).
    translate_beam_size: int = 2
    cpu_threads: int = 0
    # Parts of each window transcribed at once, each on its own thread (cpu_threads each, by
    # default the cores shared out): whisper base decodes on one core nearly as fast as on two, so
    # two parts cut in a pause go faster together than the whole does alone (see the module
    # docstring). 1: the window whole.
    parallel: int = 2
    # Whisper decodes again at each next temperature when a result loops or is unsure. Measured,
    # the retries almost never win (see the module docstring); our guards drop loops instead.
    temperatures: tuple[float, ...] = (0.0,)
    # Temperatures a transcribed (not translated) stretch is decoded again at when it still loops
    # or is unsure, after ``temperatures`` (Whisper's fallback; empty: none).
    retry_temperatures: tuple[float, ...] = ()
    # Temperatures a transcribed segment the loop guard drops is decoded again at, alone (its
    # stretch only, so speech that decodes at temperature 0 pays nothing; empty: dropped as it is).
    loop_retry_temperatures: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    # Sampled decodes of one looped stretch before it is given up: each draws anew, and in one of
    # about 25 runs every temperature looped again on the quiet Korean clip of the module docstring.
    loop_retry_attempts: int = 3
    # The translate pass may not repeat any run of this many words (0: no limit): whisper base
    # loops on Korean otherwise ("it is said that it is said ...").
    translate_no_repeat_ngram: int = 3
    # A segment is relabelled only when Whisper is this sure it hears another language.
    switch_probability: float = 0.8
    # Shortest stretch of speech (seconds) whose language is checked on its own.
    language_window: float = 10.0
    # A 30-s stretch heard as the main language with this probability is not checked in windows
    # (None: every window is heard).
    main_probability: float | None = 0.9
    # A media file is decoded and transcribed this many minutes at a time (cut in a pause).
    window_minutes: float = 10.0
    # Silero VAD before Whisper (faster-whisper's vad_parameters): speech probability counted as
    # speech, the pause that ends a stretch, and the margin kept either side of it.
    vad_threshold: float = 0.5
    vad_min_silence_ms: int = 2000
    vad_pad_ms: int = 400
    # Seconds of silence around a doubtful word run past which Whisper's text there is dropped
    # (faster-whisper's hallucination_silence_threshold; None: off). Needs word timestamps.
    hallucination_silence: float | None = 2.0
    # A segment is dropped when more than this share of its words take no time (None: never).
    untimed_share: float | None = 0.5
    # Names, places and terms the recordings hold (e.g. "Kazan, светофоры, Sejong"), given to Whisper
    # as hot words so it spells them as the user does (see benchmarks/hotwords.py for what it changes).
    # A recording's own glossary (``run(hotwords=...)``, an upload's form field) is added to these.
    hotwords: str | None = None


# Whisper keeps at most 223 prompt tokens for hot words and drops the rest silently; a Korean
# syllable can be a token of its own, so a longer glossary is refused rather than cut.
MAX_HOTWORDS = 200


def glossary(text: str | None, beside: str | None = None) -> str | None:
    """Hot words as a person typed them, spacing tidied; UserError when Whisper could not hold them
    all, together with ``beside`` (the settings' glossary, which a recording's own joins)."""
    terms = " ".join((text or "").split()) or None
    if len(joined(beside, terms) or "") > MAX_HOTWORDS:
        also = f" together with the server's own ({len(beside)} and a separator)" if beside and terms else ""
        raise UserError(f"hot words are {len(joined(beside, terms))} characters long{also}; Whisper holds at most {MAX_HOTWORDS}")
    return terms


def joined(*glossaries: str | None) -> str | None:
    """Glossaries as Whisper gets them together."""
    return ", ".join(terms for terms in glossaries if terms) or None


class Transcriber:
    """Callable pipeline: 16 kHz samples or an AudioSource in, Transcript out. The model loads
    once, in warm_up()."""

    def __init__(self, settings: WhisperSettings | None = None):
        self.settings = settings or WhisperSettings()
        self._model = None
        self._ear: _WindowLanguages | None = None
        self._pool = ThreadPoolExecutor(max(1, self.settings.parallel), thread_name_prefix="whisper-part")

    @property
    def model_name(self) -> str:
        return self.settings.model

    def warm_up(self) -> None:
        if self._model is not None:
            return
        from faster_whisper import WhisperModel

        from .features import PiecewiseFeatures

        where = resolve_whisper(self.settings.model, self.settings.cache_dir)
        try:
            parallel = max(1, self.settings.parallel)
            model = WhisperModel(
                where, device=self.settings.device, compute_type=self.settings.compute_type,
                cpu_threads=self.settings.cpu_threads or max(1, (os.cpu_count() or 1) // parallel), num_workers=parallel,
            )
        except Exception as exc:  # faster-whisper raises hub, OS and runtime errors alike
            raise ModelError(f"cannot load whisper model {self.settings.model!r}: {exc}") from exc
        self._ear = model.model = _WindowLanguages(model.model)
        model.feature_extractor = PiecewiseFeatures(**model.feat_kwargs)  # bounded memory (ingest/features.py)
        self._model = model

    def __call__(self, audio: np.ndarray | AudioSource, language: str | None = None, translate: bool = True,
                 progress: Progress | None = None, hotwords: str | None = None) -> Transcript:
        return self.run(audio, language, translate, progress, hotwords)

    def run(self, audio: np.ndarray | AudioSource, language: str | None = None, translate: bool = True,
            progress: Progress | None = None, hotwords: str | None = None) -> Transcript:
        """Transcribe (and render into English) window by window; times are on the recording's clock.
        The main language found in the first window with speech is imposed on the later ones.
        ``hotwords``: this recording's own names and terms, beside the settings' glossary."""
        if isinstance(audio, AudioSource):
            windows, expected = audio.windows(self.settings.window_minutes * 60), audio.declared
        else:
            windows, expected = [(0.0, audio)], audio.size / SAMPLE_RATE
        report = progress or (lambda fraction: None)
        heard: list[Heard] = []
        main = language
        for offset, samples in windows:
            def done(seconds: float, offset: float = offset) -> None:
                if expected:
                    report(min(1.0, float(offset + seconds) / expected))

            heard.append(self.hear(samples, offset, main, language is not None, translate, done, hotwords))
            main = main or heard[-1].language
        transcript = assemble(heard)
        report(1.0)
        return transcript

    def hear(self, samples: np.ndarray, offset: float, main: str | None, fixed: bool, translate: bool = True,
             progress: Callable[[float], None] | None = None, hotwords: str | None = None) -> Heard:
        """One window, as ``window`` hears it, in ``parallel`` parts cut in pauses and heard at once.
        The main language, when not known yet, is first heard from the window's first 30 s of speech,
        as Whisper would hear it for the whole window, so every part is decoded in it."""
        self.warm_up()
        parts = window_parts(samples, self.settings.parallel)
        if len(parts) == 1:
            return self.window(samples, offset, main, fixed, translate, progress, hotwords)
        probability = 1.0
        if main is None:
            main, probability = self._main_language(samples)
            if main is None:  # no speech: nothing to share out
                return self.window(samples, offset, None, fixed, translate, progress, hotwords)
        report = progress or (lambda seconds: None)
        done = [0.0] * len(parts)

        def part_done(i: int) -> Callable[[float], None]:
            def note(seconds: float) -> None:
                done[i] = seconds
                report(sum(done))
            return note

        futures = [self._pool.submit(self.window, part, offset + start, main, fixed, translate, part_done(i), hotwords)
                   for i, (start, part) in enumerate(parts)]
        pieces = [future.result() for future in futures]
        spoken = any(piece.language is not None for piece in pieces)
        return Heard(offset, samples.size / SAMPLE_RATE, [s for p in pieces for s in p.segments],
                     [s for p in pieces for s in p.translation], main if spoken else None, probability)

    def _main_language(self, samples: np.ndarray) -> tuple[str | None, float]:
        """The language of a window's first 30 s of speech (None when it holds none)."""
        speech = self._speech(samples)
        if not speech:
            return None, 0.0
        said = np.concatenate([samples[start:end] for start, end in speech])
        language, probability, _ = self._model.detect_language(said[: 30 * SAMPLE_RATE])
        return language, float(probability)

    def _vad(self) -> dict:
        """Silero VAD's settings, as faster-whisper takes them."""
        return {"threshold": self.settings.vad_threshold, "speech_pad_ms": self.settings.vad_pad_ms,
                "min_silence_duration_ms": self.settings.vad_min_silence_ms}

    def _speech(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """Where Silero VAD finds speech, as Whisper's own pass finds it: (start, end) in samples."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        return [(span["start"], span["end"]) for span in get_speech_timestamps(samples, VadOptions(**self._vad()))]

    def window(self, samples: np.ndarray, offset: float, main: str | None, fixed: bool, translate: bool = True,
               progress: Callable[[float], None] | None = None, hotwords: str | None = None) -> Heard:
        """One window at ``offset`` seconds into the recording, decoded in ``main`` (detected when None);
        ``fixed``: the language was given, so stretches are not relabelled. ``progress`` gets the
        seconds of this window done (transcription and translation count half each)."""
        self.warm_up()
        done = progress or (lambda seconds: None)
        length = samples.size / SAMPLE_RATE
        decoded, info = self._decode(samples, 0.0, main, "transcribe", words=True, hotwords=hotwords)
        looped: list[tuple[float, float]] = []
        sure: list[Segment] = []
        kept = self._collect(decoded, info.language, lambda end: done(0.5 * end), looped, sure)
        kept = sorted(kept + self._retry_loops(samples, looped, kept, info.language, hotwords), key=lambda segment: segment.start)
        heard_as, probability = (main, 1.0) if main is not None else (info.language, float(info.language_probability))
        if kept and not fixed:
            kept = self._relabel_languages(samples, kept, heard_as, hotwords, {id(segment) for segment in sure})
        kept = sorted(kept + self._heard_again(samples, kept, main if fixed else None, hotwords), key=lambda segment: segment.start)
        pieces: list[Segment] = []
        if translate:
            for lang, start, end in _foreign_runs(kept):
                decoded, _ = self._decode(samples, start, lang, "translate", words=False, end=end)
                pieces += self._collect(decoded, "en", lambda at: done(0.5 * length + 0.5 * at))
        done(length)
        _trim_heap()
        return Heard(offset, length, _shifted(kept, offset), _shifted(pieces, offset),
                     heard_as if kept else None, probability)

    def _retry_loops(self, samples: np.ndarray, looped: list[tuple[float, float]], kept: list[Segment],
                     language: str, hotwords: str | None) -> list[Segment]:
        """The stretches of transcribed segments the loop guard dropped, decoded again at the
        ``loop_retry_temperatures`` (Whisper's sampled fallback) each on its own; what still loops
        or is unsure stays out (after ``loop_retry_attempts`` tries), and so does what retells a
        ``kept`` segment. A quiet clip Whisper
        loops on at temperature 0 («검은색» eight times) was refused as holding no speech;
        Whisper's fallback over every stretch read it but cost clean Russian speech words and
        doubled its time (see the module docstring)."""
        again: list[Segment] = []
        for start, end in _spans_together(looped, kept) if self.settings.loop_retry_temperatures else []:
            for attempt in range(1, self.settings.loop_retry_attempts + 1):
                log.info("decoding %.1f-%.1f again (%d): it looped", start, end, attempt)
                decoded, _ = self._decode(samples, start, language, "transcribe", words=True, end=end, hotwords=hotwords,
                                          temperatures=self.settings.loop_retry_temperatures)
                heard = [segment for segment in self._collect(decoded, language, lambda at: None) if not _retells(segment, kept)]
                if heard:
                    again += heard
                    break
        return again

    def _heard_again(self, samples: np.ndarray, kept: list[Segment], language: str | None,
                     hotwords: str | None) -> list[Segment]:
        """Speech no kept segment covers (``_uncovered``), each stretch decoded again on its own, in
        ``language`` or (None) the one Whisper hears in it. Whisper decoding a window in one
        language can pass over speech in another without a word: a window of 21 s of English and
        8 s of Russian was heard as Russian (p 0.85) and its English was gone."""
        again: list[Segment] = []
        for start, end in self._uncovered(samples, kept):
            log.info("decoding %.1f-%.1f again: speech no segment holds", start, end)
            decoded, info = self._decode(samples, start, language, "transcribe", words=True, end=end, hotwords=hotwords)
            again += [segment for segment in self._collect(decoded, info.language, lambda at: None) if not _retells(segment, kept)]
        return again

    def _uncovered(self, samples: np.ndarray, kept: list[Segment]) -> list[tuple[float, float]]:
        """Stretches of speech (``_speech``) of at least ``MISSED_SECONDS`` that no kept segment
        overlaps. Only the gaps between kept segments that long are listened to: Whisper's own pass
        has just run the VAD over the whole window, and a talk heard whole has no such gap."""
        stretches: list[tuple[float, float]] = []
        reach = 0.0  # where the segments so far end
        for start, end in [*sorted((s.start, s.end) for s in kept), (samples.size / SAMPLE_RATE,) * 2]:
            if start - reach >= MISSED_SECONDS:
                gap = samples[int(reach * SAMPLE_RATE): int(start * SAMPLE_RATE)]
                stretches += [(reach + lo / SAMPLE_RATE, reach + hi / SAMPLE_RATE) for lo, hi in self._speech(gap)
                              if (hi - lo) / SAMPLE_RATE >= MISSED_SECONDS]
            reach = max(reach, end)
        return stretches

    def _decode(self, audio: np.ndarray, start: float, language: str | None, task: str, words: bool,
                end: float | None = None, hotwords: str | None = None, temperatures: tuple[float, ...] | None = None):
        """Run Whisper over audio[start:end]; segment times come back on audio's clock. Hot words
        steer the transcribing pass only (in the English rendering they would push the original's
        spellings into English). ``temperatures``: these instead of the settings' own."""
        given = joined(self.settings.hotwords, hotwords)
        lo = int(start * SAMPLE_RATE)
        hi = audio.size if end is None else int(end * SAMPLE_RATE)
        if temperatures is None:
            temperatures = (*self.settings.temperatures, *(self.settings.retry_temperatures if task == "transcribe" else ()))
        segments, info = self._model.transcribe(
            audio[lo:hi], language=language, task=task, temperature=list(temperatures),
            beam_size=self.settings.translate_beam_size if task == "translate" else self.settings.beam_size,
            word_timestamps=words, vad_filter=True, vad_parameters=self._vad(),
            condition_on_previous_text=False,
            hallucination_silence_threshold=self.settings.hallucination_silence if words else None,
            no_repeat_ngram_size=0 if task == "transcribe" else self.settings.translate_no_repeat_ngram,
            hotwords=given if task == "transcribe" else None,
        )
        ear = self._ear
        # The generator is lazy: each segment is paired with the window Whisper had just encoded.
        return ((segment, start, ear.heard if ear else None) for segment in segments), info

    def _collect(self, decoded: Iterable, language: str, progress: Callable[[float], None],
                 looped: list[tuple[float, float]] | None = None, sure: list[Segment] | None = None) -> list[Segment]:
        """The decoded segments the guards keep; the spans of those dropped as loops go to ``looped``,
        and those whose 30-s window Whisper heard as ``language`` with ``main_probability`` to ``sure``."""
        kept: list[Segment] = []
        for raw, offset, heard in decoded:
            progress(raw.end + offset)
            durations = [w.end - w.start for w in raw.words or []]
            if not keep_segment(raw.text, raw.avg_logprob, raw.no_speech_prob, durations, self.settings.untimed_share):
                log.info("dropped segment %.1f-%.1f: %r", raw.start + offset, raw.end + offset, raw.text[:60])
                if looped is not None and is_repetition_loop(raw.text):
                    looped.append((raw.start + offset, raw.end + offset))
                continue
            words = [Word(float(w.start + offset), float(w.end + offset), w.word, float(w.probability)) for w in raw.words or []]
            kept.append(Segment(float(raw.start + offset), float(raw.end + offset), raw.text.strip(), language, words))
            threshold = self.settings.main_probability
            if sure is not None and heard is not None and threshold is not None \
                    and heard[0] == language and heard[1] >= threshold:
                sure.append(kept[-1])
        return kept

    def _relabel_languages(self, audio: np.ndarray, segments: list[Segment], main: str,
                           hotwords: str | None = None, sure_ids: Collection[int] = ()) -> list[Segment]:
        """Label each stretch of speech with its own language; re-decode stretches in another language.

        Whisper decodes a file in one language; a panel that switches from Korean to English would
        otherwise come out as Korean-flavoured English. Stretches are checked in windows of at
        least ``language_window`` seconds so short interjections inherit the recording language.
        Windows made only of segments ``sure_ids`` names (their 30-s window was heard surely in
        the main language as it was transcribed) are not heard again.
        """
        sure = [id(segment) in sure_ids for segment in segments]
        result: list[Segment] = []
        first = 0
        for window in _windows(segments, self.settings.language_window):
            first += len(window)
            if all(sure[first - len(window): first]):
                result += window
                continue
            lang, probability = self._language_of(audio, window)
            if lang == main or probability < self.settings.switch_probability:
                result += window
                continue
            log.info("%.1f-%.1f s sounds like %s (p=%.2f), not %s", window[0].start, window[-1].end, lang, probability, main)
            redecoded, _ = self._decode(audio, window[0].start, lang, "transcribe", words=True, end=window[-1].end,
                                         hotwords=hotwords)
            result += self._collect(redecoded, lang, lambda at: None) or window
        return result

    def _language_of(self, audio: np.ndarray, segments: list[Segment]) -> tuple[str, float]:
        lo, hi = int(segments[0].start * SAMPLE_RATE), int(segments[-1].end * SAMPLE_RATE)
        lang, probability, _ = self._model.detect_language(audio[lo:hi])
        return lang, probability


class _WindowLanguages:
    """CTranslate2's Whisper as faster-whisper drives it, noting the language it hears in each 30-s
    window it encodes (``heard``: code and probability), read from the encoding the transcription
    makes anyway at the cost of one decoder step. Hearing a stretch on its own encodes it again
    (see the module docstring for what that cost)."""

    def __init__(self, model):
        self._model = model
        self._local = threading.local()  # parts of a window are decoded on threads of their own

    @property
    def heard(self) -> tuple[str, float] | None:
        return getattr(self._local, "heard", None)

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def encode(self, features, to_cpu: bool = False):
        encoded = self._model.encode(features, to_cpu=to_cpu)
        token, probability = self._model.detect_language(encoded)[0][0]
        self._local.heard = (token.strip("<|>"), float(probability))
        return encoded


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    library = ctypes.CDLL(name) if name else None
    return library if library is not None and hasattr(library, "malloc_trim") else None


def _trim_heap() -> None:
    """Hand the memory a window's decoding freed back to the system: glibc keeps it otherwise, and a
    server that has ingested a long file stays at its high-water mark (English in 10-minute windows:
    540 MB resident between windows without this, 330 MB with it). Elsewhere than glibc, nothing to do."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@dataclass
class Heard:
    """What one window gave: segments and English pieces on the recording's clock, and the main
    language heard in it (None when it held no speech)."""

    offset: float
    length: float
    segments: list[Segment]
    translation: list[Segment]
    language: str | None
    probability: float


def assemble(heard: list[Heard]) -> Transcript:
    """The recording's transcript from its windows in order; its language is that of the first
    window with speech."""
    spoken = [h for h in heard if h.language is not None]
    if not spoken:
        raise NoSpeechError("no speech found in the audio")
    return Transcript(language=spoken[0].language, duration=heard[-1].offset + heard[-1].length,
                      segments=[s for h in heard for s in h.segments],
                      translation=[s for h in heard for s in h.translation],
                      language_probability=spoken[0].probability)


def _retells(segment: Segment, kept: list[Segment]) -> bool:
    """Whether most of a segment decoded again lies within one already kept."""
    return any(overlap(segment.start, segment.end, k.start, k.end) > 0.5 * (segment.end - segment.start) for k in kept)


def _spans_together(spans: list[tuple[float, float]], kept: list[Segment], gap: float = 1.0) -> list[tuple[float, float]]:
    """Spans in order, those less than ``gap`` seconds apart joined into one unless a ``kept``
    segment lies between them."""
    joined: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if joined and start - joined[-1][1] < gap and not any(joined[-1][1] <= k.start < start for k in kept):
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


def window_parts(samples: np.ndarray, parallel: int) -> list[tuple[float, np.ndarray]]:
    """(start in seconds, samples) of ``parallel`` parts of about equal length, each cut in the
    widest pause within 30 s of its target; the whole when parts would be under a minute."""
    if parallel <= 1 or samples.size < parallel * _MIN_PART_SECONDS * SAMPLE_RATE:
        return [(0.0, samples)]
    cuts = [0]
    for i in range(1, parallel):
        reach = min(samples.size, i * samples.size // parallel + 30 * SAMPLE_RATE)
        cuts.append(cuts[-1] + pause_cut(samples[cuts[-1]: reach]))
    cuts.append(samples.size)
    return [(lo / SAMPLE_RATE, samples[lo:hi]) for lo, hi in zip(cuts, cuts[1:]) if hi > lo]


def _shifted(segments: list[Segment], by: float) -> list[Segment]:
    """The same segments (and words) ``by`` seconds later: from a window's clock to the recording's."""
    return [replace(s, start=s.start + by, end=s.end + by,
                    words=[replace(w, start=w.start + by, end=w.end + by) for w in s.words]) for s in segments]


def _windows(segments: list[Segment], min_seconds: float) -> list[list[Segment]]:
    """Group consecutive segments until each group spans at least ``min_seconds``."""
    groups: list[list[Segment]] = []
    for segment in segments:
        if groups and groups[-1][-1].end - groups[-1][0].start < min_seconds:
            groups[-1].append(segment)
        else:
            groups.append([segment])
    return groups


def _foreign_runs(segments: list[Segment]) -> list[tuple[str, float, float]]:
    """Maximal runs of consecutive non-English segments: what the translate pass must cover."""
    runs: list[tuple[str, float, float]] = []
    for segment in segments:
        if segment.language == "en":
            continue
        if runs and runs[-1][0] == segment.language:
            runs[-1] = (segment.language, runs[-1][1], segment.end)
        else:
            runs.append((segment.language, segment.start, segment.end))
    # A little context either side keeps Whisper from clipping the first and last words.
    return [(lang, max(0.0, start - 0.3), end + 0.3) for lang, start, end in runs]
