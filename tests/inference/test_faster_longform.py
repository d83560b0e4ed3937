"""faster-whisper's long-form pipeline as whisper-ja calls it."""

from __future__ import annotations

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.inference import faster_longform
from whisper_ja.inference.decoding import DecodeOptions
from whisper_ja.inference.faster_longform import ct2_segments
from whisper_ja.inference.longform import LongformOptions


class _Recorder:
    """A faster-whisper model that records what ``transcribe`` was asked and finds nothing."""

    max_length = 448

    def __init__(self) -> None:
        self.asked: dict = {}

    def transcribe(self, audio, **kwargs):
        self.asked = kwargs
        return iter(()), None


def test_sequential_ct2_leaves_room_for_the_previous_text(monkeypatch):
    # faster-whisper prompts with up to 223 previous tokens and refuses a window whose prompt,
    # prefix and max_new_tokens pass 448 (found by benchmarks/longform.py at 224 tokens).
    model = _Recorder()
    monkeypatch.setattr(faster_longform, "load_faster_whisper", lambda *args: model)
    audio = 0.1 * np.random.default_rng(0).standard_normal(5 * SAMPLE_RATE).astype(np.float32)
    options = DecodeOptions(max_new_tokens=224)
    assert list(ct2_segments(audio, "ct2", LongformOptions(), options)) == []
    assert model.asked["condition_on_previous_text"] is True
    assert model.asked["max_new_tokens"] == 448 - 223 - 4
    list(ct2_segments(audio, "ct2", LongformOptions(condition_on_previous_text=False), options))
    assert model.asked["max_new_tokens"] == 224
