"""Fixtures shared by the whole test suite.

- ``tiny_whisper``: a randomly initialised tiny-shaped Whisper with the real tokenizer (seconds).
- ``tiny_whisper_dir``: the same model saved as a transformers folder (treat it as read-only).
- ``whisper_base``: real offline whisper-base (converted once, cached across runs in
  ``WHISPER_JA_CACHE`` or ``~/.cache/whisper-ja``).
- ``ja_clips``: a few Japanese sentences synthesized with Open JTalk at test time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_whisper():
    from whisper_ja.model import tiny_random_whisper

    return tiny_random_whisper(seed=0)


@pytest.fixture(scope="session")
def tiny_whisper_dir(tiny_whisper, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_whisper")
    tiny_whisper.model.save_pretrained(folder)
    tiny_whisper.processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def whisper_base():
    from whisper_ja.model import load_model

    return load_model("openai/whisper-base")


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str
    audio: np.ndarray  # float32, mono
    sample_rate: int


JA_SENTENCES = (
    "今日はとても良い天気です。",
    "私は毎朝コーヒーを飲みます。",
    "駅までの道を教えてください。",
    "この本はとても面白かった。",
)


@pytest.fixture(scope="session")
def ja_clips(tmp_path_factory) -> list[Clip]:
    import pyopenjtalk
    import soundfile as sf

    folder = tmp_path_factory.mktemp("ja_clips")
    clips = []
    for i, text in enumerate(JA_SENTENCES):
        wave, rate = pyopenjtalk.tts(text)
        audio = (np.asarray(wave, dtype=np.float64) / 32768.0).astype(np.float32)
        path = folder / f"clip{i}.wav"
        sf.write(path, audio, rate)
        clips.append(Clip(path=path, text=text, audio=audio, sample_rate=int(rate)))
    return clips
