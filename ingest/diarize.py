"""Who spoke when: speaker diarization at ingest, offline.

Speech found by Silero VAD (as faster-whisper ships it) is cut into windows of 1.5-3 s; each
window gets a 256-d voice embedding from resemblyzer's pretrained encoder (the mean of its
1.6 s partials); the windows are clustered (agglomerative, average linkage on cosine distance,
stopped at a threshold when the number of speakers is not given); runs of windows with one
label become speaker turns, and turns shorter than ``min_turn`` are absorbed by their
neighbours. ``assign`` then gives each recognised word the speaker of the turn it overlaps
most, smooths short flips and splits segments at speaker changes, so that a segment never
mixes two voices.

Measured on the dev set of ``python -m benchmarks.diarization`` (README, "Speakers"; 12 recordings
each of 2, 3 and 4 speakers): a clustering threshold of 0.25 got the count right on 100/100/92%
(0.2: 75/33/25%, over-splitting; 0.35: 100/92/58% and 0.4: 100/67/42%, merging), once clusters
holding under ``min_speaker`` (4 s) of speech were folded into the nearest one (without that,
0.25 counted 4-speaker recordings right only 58% of the time, mostly one stray extra cluster).
Named voices are recognised at cosine ``RECOGNISED`` (0.89: the fewest mistakes on the dev set's
cross-recording pairs). Diarization costs 0.4% of real time on the 2-core machine (1.8% of
whisper base's transcription time), mostly the encoder's LSTM (60%), Silero VAD (20%) and mel
spectrograms (20%).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Iterable, Protocol

import numpy as np

from core.errors import ModelError
from .media import SAMPLE_RATE, AudioSource
from .records import Segment, Transcript, Word

# Speaker labels before anyone names them: SPEAKER_1, SPEAKER_2, ...
LABEL = "SPEAKER_{}"
# Cosine similarity at which a new voice is suggested to be a named voice of the library.
RECOGNISED = 0.89


@dataclass
class Turn:
    """A stretch of the recording spoken by one speaker."""

    start: float
    end: float
    speaker: str


@dataclass
class Diarization:
    """Turns in time order, and each speaker's voice (L2-normalised mean embedding) for
    recognising the same voice in other recordings."""

    turns: list[Turn]
    voices: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns}, key=lambda s: (len(s), s))


@dataclass
class DiarizationSettings:
    """Window sizes and turn lengths in seconds; ``threshold`` is the cosine distance at which
    clusters stop merging when the number of speakers is unknown."""

    min_window: float = 1.5
    max_window: float = 3.0
    threshold: float = 0.25
    min_turn: float = 1.0
    min_speaker: float = 4.0
    max_speakers: int = 10
    # Gaps between turns of one speaker shorter than this are spoken by that speaker.
    bridge: float = 1.0


class Diarizer(Protocol):
    """What ingest needs from a diarization backend: a light constructor, a ``warm_up`` that
    loads the model once, and turns for 16 kHz audio."""

    def warm_up(self) -> None: ...

    def __call__(self, audio: np.ndarray | AudioSource, speakers: int | None = None) -> Diarization: ...


def speech_spans(audio: np.ndarray) -> list[tuple[float, float]]:
    """Where ``audio`` holds speech, in seconds (Silero VAD)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    found = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300, speech_pad_ms=60))
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in found]


def windows(spans: list[tuple[float, float]], shortest: float, longest: float) -> list[tuple[float, float]]:
    """Each span cut into equal windows between ``shortest`` and ``longest`` seconds (a span
    shorter than ``shortest`` stays one window)."""
    result = []
    for start, end in spans:
        pieces = max(1, int(np.ceil((end - start) / longest)))
        if pieces > 1 and (end - start) / pieces < shortest:
            pieces -= 1
        edges = np.linspace(start, end, pieces + 1)
        result += [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]
    return result


def cluster(embeddings: np.ndarray, seconds: np.ndarray, speakers: int | None, settings: DiarizationSettings) -> np.ndarray:
    """Labels 0..k-1 for L2-normalised ``embeddings`` of windows lasting ``seconds``, numbered by
    first appearance. With the count unknown, a cluster holding less than ``min_speaker``
    seconds of speech is not a speaker: its windows join the nearest remaining cluster."""
    if len(embeddings) < 2 or speakers == 1:
        return np.zeros(len(embeddings), dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    if speakers is not None:
        model = AgglomerativeClustering(n_clusters=min(speakers, len(embeddings)), metric="cosine", linkage="average")
    else:
        model = AgglomerativeClustering(n_clusters=None, distance_threshold=settings.threshold, metric="cosine",
                                        linkage="average")
    labels = model.fit_predict(embeddings)
    if speakers is None:
        if labels.max() + 1 > settings.max_speakers:
            return cluster(embeddings, seconds, settings.max_speakers, settings)
        talk = np.bincount(labels, weights=seconds)
        kept = np.flatnonzero(talk >= settings.min_speaker)
        if 0 < len(kept) < len(talk):
            centroids = np.stack([embeddings[labels == k].mean(axis=0) for k in kept])
            small = ~np.isin(labels, kept)
            labels[small] = kept[np.argmax(embeddings[small] @ centroids.T, axis=1)]
    order = {label: i for i, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[label] for label in labels.tolist()])


def turns(spans: list[tuple[float, float]], labels: np.ndarray, settings: DiarizationSettings) -> list[Turn]:
    """Windows with labels → turns: short turns absorbed by the longer neighbour, short gaps
    between one speaker's windows bridged."""
    runs: list[list] = []
    for (start, end), label in zip(spans, labels.tolist()):
        if runs and runs[-1][2] == label and start - runs[-1][1] <= settings.bridge:
            runs[-1][1] = end
        else:
            runs.append([start, end, label])
    while len(runs) > 1:
        lengths = [end - start for start, end, _ in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= settings.min_turn:
            break
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        j = max(neighbours, key=lambda n: lengths[n])
        runs[i][2] = runs[j][2]
        merged: list[list] = []
        for run in runs:
            if merged and merged[-1][2] == run[2] and run[0] - merged[-1][1] <= settings.bridge:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        runs = merged
    names = {label: LABEL.format(i + 1) for i, label in enumerate(dict.fromkeys(r[2] for r in runs))}
    return [Turn(round(start, 3), round(end, 3), names[label]) for start, end, label in runs]


class ResemblyzerDiarizer:
    """Diarization with resemblyzer's voice encoder (the ``pretrained.pt`` its wheel ships)."""

    def __init__(self, settings: DiarizationSettings | None = None, device: str = "cpu"):
        self.settings = settings or DiarizationSettings()
        self.device = device
        self._encoder = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._encoder is not None:
                return
            try:
                from faster_whisper.vad import get_vad_model
                from resemblyzer import VoiceEncoder

                get_vad_model()  # cached by faster-whisper: loaded here once, not in the first ingest
                self._encoder = VoiceEncoder(self.device, verbose=False)
            except Exception as exc:  # import, file and torch errors alike
                raise ModelError(f"cannot load the resemblyzer voice encoder: {exc}") from exc

    def embed(self, audio: np.ndarray, spans: list[tuple[float, float]], offset: float = 0.0) -> np.ndarray:
        """One L2-normalised embedding per span of ``audio`` (times on the clock ``offset``
        seconds before ``audio`` starts): the mean of the encoder's 1.6 s partials covering it,
        each window normalised to the encoder's loudness first."""
        import torch
        from resemblyzer import audio as rz
        from resemblyzer.hparams import audio_norm_target_dBFS, partials_n_frames

        self.warm_up()
        mels, owners = [], []
        for i, (start, end) in enumerate(spans):
            piece = audio[max(0, int((start - offset) * SAMPLE_RATE)):int((end - offset) * SAMPLE_RATE)]
            if not piece.size or not np.any(piece):
                piece = np.zeros(SAMPLE_RATE // 10, dtype=np.float32)
            else:
                piece = rz.normalize_volume(piece.astype(np.float32), audio_norm_target_dBFS)
            mel = rz.wav_to_mel_spectrogram(piece)
            count = max(1, int(np.ceil(len(mel) / partials_n_frames)))
            if len(mel) < partials_n_frames:
                mel = np.pad(mel, ((0, partials_n_frames - len(mel)), (0, 0)))
            for start_frame in np.linspace(0, len(mel) - partials_n_frames, count).astype(int):
                mels.append(mel[start_frame:start_frame + partials_n_frames])
                owners.append(i)
        if not mels:
            return np.zeros((0, 256), dtype=np.float32)
        with torch.no_grad():
            partials = np.concatenate([self._encoder(torch.from_numpy(np.stack(mels[b:b + 256]))).numpy()
                                       for b in range(0, len(mels), 256)])
        summed = np.zeros((len(spans), partials.shape[1]), dtype=np.float32)
        np.add.at(summed, np.array(owners), partials)
        return summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-9)

    def __call__(self, audio: np.ndarray | AudioSource, speakers: int | None = None) -> Diarization:
        blocks: Iterable[tuple[float, np.ndarray]] = (audio.windows(600.0) if isinstance(audio, AudioSource)
                                                      else [(0.0, audio)])
        spans: list[tuple[float, float]] = []
        parts: list[np.ndarray] = []
        for offset, samples in blocks:
            found = windows([(offset + a, offset + b) for a, b in speech_spans(samples)],
                            self.settings.min_window, self.settings.max_window)
            spans += found
            parts.append(self.embed(samples, found, offset))
        if not spans:
            return Diarization([])
        embeddings = np.concatenate(parts)
        seconds = np.array([end - start for start, end in spans])
        labels = cluster(embeddings, seconds, speakers, self.settings)
        found_turns = turns(spans, labels, self.settings)
        return Diarization(found_turns, voices(spans, embeddings, found_turns))


def voices(spans: list[tuple[float, float]], embeddings: np.ndarray, found: list[Turn]) -> dict[str, np.ndarray]:
    """Each speaker's L2-normalised mean embedding over the windows inside their turns."""
    sums: dict[str, np.ndarray] = {}
    for (start, end), vector in zip(spans, embeddings):
        turn = speaker_at(found, start, end)
        if turn is not None:
            sums[turn] = sums.get(turn, 0) + vector
    return {name: v / np.linalg.norm(v) for name, v in sums.items()}


def suggest(registry: dict[str, np.ndarray], voices: dict[str, np.ndarray], threshold: float = RECOGNISED) -> dict[str, str]:
    """label → the registry's name closest to that voice, for voices at least ``threshold`` close."""
    if not registry:
        return {}
    names, known = list(registry), np.stack(list(registry.values()))
    suggested = {}
    for label, voice in voices.items():
        scores = known @ voice
        if scores.max() >= threshold:
            suggested[label] = names[int(scores.argmax())]
    return suggested


def speaker_at(found: list[Turn], start: float, end: float) -> str | None:
    """The speaker whose turn overlaps [start, end] most; the nearest turn's when none overlaps."""
    if not found:
        return None
    best = max(found, key=lambda t: (min(end, t.end) - max(start, t.start)))
    if min(end, best.end) - max(start, best.start) > 0:
        return best.speaker
    middle = (start + end) / 2
    return min(found, key=lambda t: min(abs(middle - t.start), abs(middle - t.end))).speaker


def assign(transcript: Transcript, diarization: Diarization, min_flip: float = 1.0) -> None:
    """Give each segment of ``transcript`` its speaker, splitting segments where the speaker
    changes. Each word takes the turn it overlaps most; a run of words shorter than ``min_flip``
    seconds between two runs takes its neighbours' speaker (a flip that short is noise at
    1.5-3 s windows). Segments without words (imported cues) take the turn they overlap most."""
    if not diarization.turns:
        return
    words = [w for s in transcript.segments for w in s.words]
    labels = [speaker_at(diarization.turns, w.start, w.end) for w in words]
    runs: list[list[int]] = []  # [first word, last word] of each run of one label
    for i, label in enumerate(labels):
        if runs and labels[runs[-1][0]] == label:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    for k, (first, last) in enumerate(runs):
        if 0 < k < len(runs) - 1 and words[last].end - words[first].start < min_flip:
            before = labels[runs[k - 1][0]]
            labels[first:last + 1] = [before] * (last - first + 1)
    speaker_of = {id(w): label for w, label in zip(words, labels)}
    segments: list[Segment] = []
    for segment in transcript.segments:
        if not segment.words:
            segments.append(replace(segment, speaker=speaker_at(diarization.turns, segment.start, segment.end)))
            continue
        groups: list[list[Word]] = []
        for word in segment.words:
            if groups and speaker_of[id(groups[-1][-1])] == speaker_of[id(word)]:
                groups[-1].append(word)
            else:
                groups.append([word])
        for i, group in enumerate(groups):
            if len(groups) == 1:
                segments.append(replace(segment, speaker=speaker_of[id(group[0])]))
                continue
            start = segment.start if i == 0 else group[0].start
            end = segment.end if i == len(groups) - 1 else group[-1].end
            text = "".join(w.text for w in group).strip()
            segments.append(Segment(start, end, text, segment.language, group, None, speaker_of[id(group[0])]))
    transcript.segments = segments
