"""Whisper's features made piece by piece are faster-whisper's own (up to float rounding), for
any length: shorter than one piece, a piece and a frame, many pieces."""
import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from ingest import features
from ingest.features import PiecewiseFeatures


@pytest.mark.parametrize("seconds", [0.03, 3.0, 30.02, 95.5])
def test_piecewise_features_are_faster_whispers(seconds, monkeypatch):
    monkeypatch.setattr(features, "PIECE_FRAMES", 1000)  # 10 s: several pieces without a long signal
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * 16000)) / 16000
    waveform = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(t)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    want = FeatureExtractor()(waveform, chunk_length=30)
    got = PiecewiseFeatures()(waveform, chunk_length=30)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)
