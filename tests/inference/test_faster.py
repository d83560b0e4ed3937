"""The faster-whisper backend (``transcribe --backend ct2``) on a tiny int8 CTranslate2 export."""

from __future__ import annotations

import shutil

import pytest

from whisper_ja.errors import ModelError
from whisper_ja.inference.engine import load_engine
from whisper_ja.inference.faster import Ct2Error, convert_ct2, load_faster_whisper
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings


def _load_ct2(folder) -> None:
    """What `transcribe --backend ct2 --model FOLDER` loads before reading any audio."""
    load_engine(str(folder), None, RuntimeSettings(backend="ct2", device="cpu"),
                DecodingOptions())


def test_int8_export_is_stored_as_int8(tiny_ct2):
    assert load_faster_whisper(str(tiny_ct2), "default").model.compute_type.startswith("int8")


def test_incomplete_model_folder_is_named(tiny_ct2, tmp_path):
    with pytest.raises(ModelError, match="nowhere: not a local folder"):
        _load_ct2(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="empty: neither a transformers model folder"):
        _load_ct2(tmp_path / "empty")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_ct2, partial)
    (partial / "tokenizer.json").unlink()
    with pytest.raises(Ct2Error, match=r"partial.*missing tokenizer.json"):
        _load_ct2(partial)


def test_convert_refuses_a_folder_without_processor_files(tiny_whisper, tmp_path):
    folder = tmp_path / "bare"
    tiny_whisper.model.save_pretrained(folder)  # weights only: no tokenizer.json
    with pytest.raises(Ct2Error, match="tokenizer.json, preprocessor_config.json"):
        convert_ct2(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreadable_context_record_is_named(tiny_ct2, tmp_path):
    from whisper_ja.model.record import recorded_policy

    folder = tmp_path / "bad"
    shutil.copytree(tiny_ct2, folder)
    (folder / "whisper_ja.json").write_text('{"context": {"min_frames": 7}}')
    with pytest.raises(ModelError, match=r"whisper_ja.json: not a whisper-ja model record"):
        recorded_policy(folder)
