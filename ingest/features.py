"""Whisper's log-Mel features for a long stretch of audio, a few minutes of frames at a time.

faster-whisper computes the spectrogram of everything it is given in one go: for a 5-minute part
the framed signal, its FFT and their float copies held ~260 MiB at once, and two parts decoded
side by side twice that (tracemalloc on 20 minutes of English: 520 of the 702 MiB Python held at
its peak). The spectrogram itself is small (80 floats a frame, 10 ms a frame). ``PiecewiseFeatures``
frames, transforms and mel-filters ``PIECE_FRAMES`` frames at a time into that spectrogram, then
clamps and scales it over the whole, as faster-whisper does; the frames are the same, so the
features are the same up to float rounding in the filter products.
"""
from __future__ import annotations

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

# Frames transformed at once: 30 s (the FFT of 3,000 frames is ~5 MB).
PIECE_FRAMES = 3000


class PiecewiseFeatures(FeatureExtractor):
    """faster-whisper's FeatureExtractor, its spectrogram made piece by piece (same arguments, same
    output)."""

    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> np.ndarray:
        if chunk_length is not None:
            self.n_samples = chunk_length * self.sampling_rate
            self.nb_max_frames = self.n_samples // self.hop_length
        waveform = np.asarray(waveform, dtype=np.float32)
        if padding:
            waveform = np.pad(waveform, (0, padding))
        half = self.n_fft // 2
        padded = np.pad(waveform, (half, half), mode="reflect")  # the STFT's centring
        frames = 1 + (padded.size - self.n_fft) // self.hop_length - 1  # the last frame is dropped, as there
        window = np.hanning(self.n_fft + 1)[:-1].astype("float32")
        mel = np.empty((self.mel_filters.shape[0], frames), np.float32)
        for start in range(0, frames, PIECE_FRAMES):
            stop = min(start + PIECE_FRAMES, frames)
            piece = padded[start * self.hop_length: (stop - 1) * self.hop_length + self.n_fft]
            spectrum = self.stft(piece, self.n_fft, self.hop_length, window=window, center=False,
                                 return_complex=True).astype("complex64")
            mel[:, start:stop] = self.mel_filters @ (np.abs(spectrum) ** 2)
        log_spec = np.log10(np.clip(mel, a_min=1e-10, a_max=None))
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0
