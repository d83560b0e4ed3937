"""Fixtures of the inference tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="session")
def tiny_ct2(tmp_path_factory: pytest.TempPathFactory, tiny_whisper_dir: Path) -> Path:
    """An int8 CTranslate2 export of the tiny random Whisper (read-only: copy to change it)."""
    # Imported here, not at the top: the export pulls in CTranslate2's converter.
    from whisper_ja.export.writer import ExportConfig, export_model

    out = tmp_path_factory.mktemp("ct2") / "ct2-int8"
    export_model(ExportConfig(model=str(tiny_whisper_dir), to="ct2", out=out,
                              quantization="int8"))
    return out


@pytest.fixture(scope="session")
def wavs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    first = folder / "a.wav"  # 16 kHz mono
    sf.write(first, (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
    second = folder / "b.flac"  # 8 kHz stereo: load_audio resamples and mixes down
    sf.write(second, (0.1 * rng.standard_normal((8000 * 3, 2))).astype(np.float32), 8000)
    return [first, second]
