"""Windows of batched decoding from VAD stretches."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.inference import vad
from whisper_ja.inference.options import VadSettings
from whisper_ja.inference.timestamps import SpeechSpan


@pytest.fixture
def found(monkeypatch):
    spans: list[SpeechSpan] = []
    monkeypatch.setattr(vad, "speech_spans", lambda audio, settings=None: list(spans))
    return spans


def _noise(seconds: float) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(
        np.float32)


def test_windows_widen_into_the_silence_around_them_at_most_half_way_to_a_neighbour(found):
    found.extend([SpeechSpan(0.1, 2.0), SpeechSpan(5.0, 6.0), SpeechSpan(6.3, 9.9)])
    settings = VadSettings(max_gap_s=0.1)  # the 0.3 s gap splits the last two windows
    plain = vad.batch_windows(_noise(10.0), settings)
    assert [(w.start, w.end) for w in plain] == [(0.1, 2.0), (5.0, 6.0), (6.3, 9.9)]
    wide = vad.batch_windows(_noise(10.0), settings, edge_s=0.2)
    assert [(round(w.start, 3), round(w.end, 3)) for w in wide] == [
        (0.0, 2.2), (4.8, 6.15), (6.15, 10.0)]


def test_a_window_near_30_s_widens_only_up_to_30_s(found):
    found.append(SpeechSpan(1.0, 30.8))
    [window] = vad.batch_windows(_noise(32.0), VadSettings(), edge_s=0.5)
    assert window.duration <= 30.0 + 1e-9
