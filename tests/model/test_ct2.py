"""CTranslate2 import: exact on float32, faithful on int8 and on real whisper-base."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest
import torch

from whisper_ja.cli import main
from whisper_ja.model import load_model, special_tokens
from whisper_ja.model.ct2 import convert_ct2_whisper
from whisper_ja.model.ct2_format import Ct2FormatError, check_ct2_model_bin, read_ct2_model


def test_float32_import_reproduces_every_weight(mini_whisper):
    imported, processor = convert_ct2_whisper(mini_whisper.ct2_float32)
    original = mini_whisper.model.state_dict()
    restored = imported.state_dict()
    assert set(original) == set(restored)
    for name, value in original.items():
        assert torch.equal(value, restored[name]), name
    embeddings = imported.model.decoder.embed_tokens.weight
    assert imported.proj_out.weight.data_ptr() == embeddings.data_ptr()  # tied, as in Whisper
    prefix = processor.tokenizer("テスト").input_ids[:4]
    assert processor.tokenizer.convert_ids_to_tokens(prefix) == [
        "<|startoftranscript|>", "<|ja|>", "<|transcribe|>", "<|notimestamps|>"]


def test_int8_import_dequantizes_within_one_step(mini_whisper):
    imported, _ = convert_ct2_whisper(mini_whisper.ct2_int8)
    restored = imported.state_dict()
    for name, value in mini_whisper.model.state_dict().items():
        if name.endswith("weight") and value.ndim >= 2:
            # one int8 step per output row: amax(row) / 127
            step = value.abs().flatten(1).amax(dim=1) / 127
            diff = (value - restored[name]).abs().flatten(1).amax(dim=1)
            assert torch.all(diff <= step * 0.51 + 1e-7), name
        else:
            assert torch.allclose(value, restored[name], atol=1e-6), name


def test_imported_model_forces_japanese(mini_whisper):
    imported, processor = convert_ct2_whisper(mini_whisper.ct2_float32)
    generation = imported.generation_config
    assert (generation.language, generation.task, generation.return_timestamps) == (
        "ja", "transcribe", False)
    to_token = processor.tokenizer.convert_ids_to_tokens
    assert to_token(generation.lang_to_id["<|ja|>"]) == "<|ja|>"
    assert to_token(generation.no_timestamps_token_id) == "<|notimestamps|>"
    assert imported.config.encoder_layers == 2 and imported.config.d_model == 64


def test_import_ct2_command_writes_a_loadable_folder(mini_whisper, tmp_path):
    out = tmp_path / "imported"
    assert main(["import-ct2", str(mini_whisper.ct2_float32), str(out), "--dtype", "float32"]) == 0
    loaded = load_model(out)
    for name, value in mini_whisper.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[name]), name
    tokenizer = loaded.processor.tokenizer
    assert tuple(tokenizer.prefix_tokens) == special_tokens(tokenizer).ja_prefix


def test_import_ct2_command_rejects_a_folder_without_model(tmp_path, capsys):
    assert main(["import-ct2", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "src" in capsys.readouterr().err


def test_reader_reports_truncated_file(mini_whisper, tmp_path):
    data = (mini_whisper.ct2_float32 / "model.bin").read_bytes()
    broken = tmp_path / "model.bin"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(Ct2FormatError, match="truncated") as err:
        read_ct2_model(broken)
    assert str(broken) in str(err.value)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_check_names_a_cut_short_model_bin_without_loading_it(mini_whisper, tmp_path, keep):
    source = mini_whisper.ct2_float32 / "model.bin"
    check_ct2_model_bin(source)  # whole: fine
    data = source.read_bytes()
    broken = tmp_path / "model.bin"
    broken.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(Ct2FormatError, match="truncated at byte .* short") as err:
        check_ct2_model_bin(tmp_path)
    assert str(broken) in str(err.value)
    broken.write_bytes(b"")
    with pytest.raises(Ct2FormatError, match="empty file"):
        check_ct2_model_bin(broken)


def test_reader_rejects_unknown_version(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(struct.pack("<I", 99) + b"\0" * 16)
    with pytest.raises(Ct2FormatError, match="version 99"):
        read_ct2_model(bad)


@pytest.fixture(scope="module")
def base_ct2_folder(tmp_path_factory):
    from whisper_ja.model.offline import _assemble_model_bin

    folder = tmp_path_factory.mktemp("base_ct2")
    data_dir, data = _assemble_model_bin()
    (folder / "model.bin").write_bytes(data)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(data_dir / name, folder / name)
    return folder


@pytest.mark.slow
def test_offline_base_matches_ctranslate2(whisper_base, base_ct2_folder, ja_clips):
    """Same log-mel features into the imported model and into CTranslate2 itself."""
    import ctranslate2

    from whisper_ja.audio.io import resample
    from whisper_ja.inference.backends.hf import HfBackend
    from whisper_ja.inference.guards import decode_windows
    from whisper_ja.inference.options import DecodingOptions

    model, processor = whisper_base.model, whisper_base.processor
    audios = [resample(c.audio, c.sample_rate) for c in ja_clips[:2]]  # two: keeps it quick
    features = processor.feature_extractor(audios, sampling_rate=16000,
                                           return_tensors="pt").input_features
    reference = ctranslate2.models.Whisper(str(base_ct2_folder), device="cpu",
                                           compute_type="float32", intra_threads=2)
    storage = ctranslate2.StorageView.from_array(features.numpy())
    ct2_encoded = np.array(reference.encode(storage))
    with torch.no_grad():
        hf_encoded = model.model.encoder(features).last_hidden_state.numpy()
    assert np.abs(ct2_encoded - hf_encoded).max() < 5e-3
    assert np.abs(ct2_encoded - hf_encoded).mean() < 1e-4

    ct2_ids = [r.sequences_ids[0] for r in reference.generate(
        storage, [list(special_tokens(processor.tokenizer).ja_prefix)] * len(audios),
        beam_size=1, max_length=200)]
    backend = HfBackend(whisper_base, context="full")
    encoded = backend.encode_features(features, [a.size / 16000 for a in audios])
    ours = decode_windows(backend, encoded, range(len(audios)),
                          DecodingOptions(max_new_tokens=100), timestamps=False)
    assert [list(r.ids) for r in ours] == ct2_ids
    assert all(ids for ids in ct2_ids)
