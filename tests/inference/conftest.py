"""Fixtures of the inference tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="session")
def wavs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    first = folder / "a.wav"  # 16 kHz mono
    sf.write(first, (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
    second = folder / "b.flac"  # 8 kHz stereo: load_audio resamples and mixes down
    sf.write(second, (0.1 * rng.standard_normal((8000 * 3, 2))).astype(np.float32), 8000)
    return [first, second]
