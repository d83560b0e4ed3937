"""The faster-whisper backend (``transcribe --backend ct2``) on a tiny int8 CTranslate2 export."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.inference.faster import (
    Ct2Error,
    convert_ct2,
    load_faster_whisper,
    transcribe_ct2,
)


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory, tiny_whisper_dir) -> Path:
    from whisper_ja.export.writer import ExportConfig, export_model

    out = tmp_path_factory.mktemp("faster") / "ct2-int8"
    export_model(ExportConfig(model=str(tiny_whisper_dir), to="ct2", out=out,
                              quantization="int8"))
    return out


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(0)
    first = folder / "a.wav"  # 16 kHz mono
    sf.write(first, (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
    second = folder / "b.flac"  # 8 kHz stereo: load_audio resamples and mixes down
    sf.write(second, (0.1 * rng.standard_normal((8000 * 3, 2))).astype(np.float32), 8000)
    return [first, second]


def test_int8_export_is_stored_as_int8(tiny_ct2):
    assert load_faster_whisper(str(tiny_ct2), "default").model.compute_type.startswith("int8")


def test_transcribe_ct2_gives_one_text_per_file(tiny_ct2, wavs):
    # A random model says nothing about content (whisper-base CER through this path is checked
    # in tests/test_export.py); here: one text per file, in order, deterministic, bounded.
    texts = transcribe_ct2(wavs, str(tiny_ct2), max_new_tokens=6, progress=False)
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    assert transcribe_ct2(wavs[::-1], str(tiny_ct2), max_new_tokens=6, progress=False) \
        == texts[::-1]
    longer = transcribe_ct2(wavs[:1], str(tiny_ct2), max_new_tokens=12, progress=False)
    assert len(longer[0]) > len(texts[0])


def test_incomplete_model_folder_is_named(tiny_ct2, tmp_path, wavs):
    with pytest.raises(Ct2Error, match="no such CTranslate2 model folder"):
        transcribe_ct2(wavs, str(tmp_path / "nowhere"), progress=False)
    partial = tmp_path / "partial"
    shutil.copytree(tiny_ct2, partial)
    (partial / "tokenizer.json").unlink()
    with pytest.raises(Ct2Error, match=r"partial.*missing tokenizer.json"):
        transcribe_ct2(wavs, str(partial), progress=False)


def test_unreadable_audio_names_the_file(tiny_ct2, tmp_path):
    from whisper_ja.audio.io import AudioError

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="broken.wav"):
        transcribe_ct2([bad], str(tiny_ct2), progress=False)


def test_convert_refuses_a_folder_without_processor_files(tiny_whisper, tmp_path):
    folder = tmp_path / "bare"
    tiny_whisper.model.save_pretrained(folder)  # weights only: no tokenizer.json
    with pytest.raises(Ct2Error, match="tokenizer.json, preprocessor_config.json"):
        convert_ct2(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
