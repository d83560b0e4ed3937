"""The gate's measurements on either backend (``gate.backend``), on the tiny random Whisper."""

from __future__ import annotations

import pytest
import torch

from tests.training.test_loop import tiny_config
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.data.manifest import read_manifest
from whisper_ja.inference.backends.ct2 import Ct2Backend
from whisper_ja.inference.backends.hf import HfBackend
from whisper_ja.inference.options import DecodingOptions, GuardSettings, RuntimeSettings
from whisper_ja.model import load_model
from whisper_ja.training.gate import GateSettings
from whisper_ja.training.gate_checks import GateDecoding
from whisper_ja.training.loop import train

GREEDY = DecodingOptions(max_new_tokens=6,
                         guards=GuardSettings(repetition=False, fallback=False))


def _peft(tiny_whisper_dir, scale: float):
    """The tiny model with a rank-4 LoRA whose B is ``scale`` times random (0 = untouched)."""
    from peft import LoraConfig, get_peft_model

    loaded = load_model(str(tiny_whisper_dir))
    model = get_peft_model(loaded.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(scale * torch.randn(param.shape, generator=generator))
    return model, loaded.processor


def test_ct2_snapshot_decodes_the_adapted_weights_and_leaves_the_model_alone(
        tiny_whisper_dir, clips_manifest):
    utts = read_manifest(clips_manifest)[:2]
    ct2 = GateSettings(runtime=RuntimeSettings(backend="ct2"))
    decoding = GateDecoding(ct2, GREEDY, ContextPolicy())
    ids = {}
    for scale in (0.0, 3.0):
        model, processor = _peft(tiny_whisper_dir, scale)
        model.train()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with decoding.decoder(model, processor) as decoder:
            assert isinstance(decoder.backend, Ct2Backend)
            ids[scale] = [r.token_ids
                          for r in decoder.decode_utterances(utts, language="ja").decoded()]
        assert model.training and hasattr(model, "peft_config")  # still the live peft model
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert ids[0.0] != ids[3.0]  # the snapshot carries the adapter


def test_both_backends_measure_every_check(tiny_whisper_dir, clips_manifest):
    utts = read_manifest(clips_manifest)[:2]
    loaded = load_model(str(tiny_whisper_dir))
    for backend, kind in (("transformers", HfBackend), ("ct2", Ct2Backend)):
        settings = GateSettings(runtime=RuntimeSettings(backend=backend))
        decoding = GateDecoding(settings, GREEDY, ContextPolicy())
        with decoding.decoder(loaded.model, loaded.processor) as decoder:
            assert isinstance(decoder.backend, kind)
        scores = decoding.measure(loaded.model, loaded.processor, utts, utts)
        assert [s.check for s in scores] == ["unseen_cer", "english_wer", "language_id"]
        assert all(len(s.counts) == len(utts) for s in scores)


def test_the_gate_decodes_where_every_command_does():
    """gate.backend / gate.compute_type are the shared runtime settings: checked alike."""
    from whisper_ja.config import ConfigError, load_config
    from whisper_ja.training.settings import TrainConfig

    with pytest.raises(ConfigError, match="compute_type"):
        load_config(TrainConfig, overrides=["gate.backend=transformers",
                                            "gate.compute_type=int8"])
    gate = load_config(TrainConfig, overrides=["gate.backend=ct2",
                                               "gate.compute_type=int8"]).gate
    assert (gate.runtime.backend, gate.runtime.compute_type) == ("ct2", "int8")


@pytest.mark.slow
def test_train_runs_the_gate_on_ct2_snapshots(tmp_path, tiny_whisper_dir, clips_manifest,
                                              monkeypatch):
    from whisper_ja.inference import engine
    from whisper_ja.training import loop

    # Validation decodes the gate's snapshot (not the transformers model); step 2 is made
    # better in-domain so that it is judged (the tiny model's own CERs are arbitrary).
    queue, decoders, snapshots = [0.5, 0.4], [], []
    real_snapshot = engine.ct2_snapshot
    monkeypatch.setattr(engine, "ct2_snapshot", lambda *args: (
        snapshots.append(1), real_snapshot(*args))[1])
    monkeypatch.setattr(loop, "validate", lambda *args: pytest.fail("transformers validation"))
    monkeypatch.setattr(loop, "validate_decoded", lambda decoder, utts: (
        decoders.append(type(decoder.backend).__name__), queue.pop(0))[1])
    out = tmp_path / "run"
    config = tiny_config(out, tiny_whisper_dir, clips_manifest, "mode=lora",
                         f"data.validation=[{clips_manifest}]", "run.validate_at_start=true",
                         "run.validate_every=2", f"gate.unseen=[{clips_manifest}]",
                         f"gate.retention=[{clips_manifest}]", "gate.bootstrap=50",
                         "gate.backend=ct2")
    summary = train(config).summary
    assert [v["step"] for v in summary["gate_validations"]] == [0, 2]
    assert decoders == ["Ct2Backend", "Ct2Backend"]
    # One snapshot at step 0 serves the gate's untouched scores and the validation.
    assert len(snapshots) == 2
    n = len(read_manifest(clips_manifest))
    assert summary["gate_sets"] == {"unseen": n, "retention": n}
    assert (out / "gate_untouched.json").is_file()
    assert not list(out.glob("**/whisper-ja-snapshot-*"))  # snapshots are temporary
