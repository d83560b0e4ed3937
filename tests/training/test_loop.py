"""Training on the tiny random Whisper: settings, freezing, labels, SpecAugment, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

import whisper_ja.training.loop as train_module
import whisper_ja.training.step as step_module
from whisper_ja.config import ConfigError, load_config
from whisper_ja.training.loop import TrainConfig, prepare_model, train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PREPARE_MODEL = train_module.prepare_model
ACCUMULATE_GRADIENTS = step_module.accumulate_gradients


@pytest.fixture
def one_thread():
    """The test machine is shared: one thread per test process avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(out: Path, model: Path, manifest: Path, *overrides: str) -> TrainConfig:
    """A few fast steps on the tiny model: fp32, short context, 4-token validation."""
    return load_config(TrainConfig, overrides=[
        f"model={model}", f"out={out}", "precision=fp32", f"data.train=[{manifest}]",
        "optim.batch_size=2", "optim.max_steps=2", "efficiency.context.min_frames=0",
        "run.val_max_new_tokens=4", "run.progress=false", "run.tensorboard=false",
        "run.validate_at_start=false", *overrides])


# --- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize(("override", "name"), [
    ("lora.rank=0", "lora.rank"),
    ("optim.lr=-0.001", "optim.lr"),
    ("lora.target_modules=[q_proj,query]", "lora.target_modules"),
    ("lora.dropout=1.0", "lora.dropout"),
    ("optim.batch_size=0", "optim.batch_size"),
    ("data.mixing=[jsut]", "data.mixing"),
    ("precision=fp8", "precision"),
    ("lora.ranks=8", "lora.ranks"),
])
def test_bad_values_fail_naming_the_setting(override, name):
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        load_config(TrainConfig, overrides=[override])


def test_missing_manifest_fails_before_any_work(tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be loaded for a bad manifest")

    monkeypatch.setattr(train_module, "load_model", no_model)
    config = load_config(TrainConfig, overrides=[f"out={tmp_path / 'out'}",
                                                 f"data.train=[{tmp_path / 'nope.jsonl'}]"])
    with pytest.raises(ConfigError, match=r"data\.train: manifest .*nope\.jsonl"):
        train(config)
    assert not (tmp_path / "out").exists()


def test_mixing_an_absent_corpus_fails_before_any_work(tmp_path, clips_manifest, monkeypatch):
    monkeypatch.setattr(train_module, "load_model", None)  # any use would raise TypeError
    config = load_config(TrainConfig, overrides=[
        f"out={tmp_path / 'out'}", f"data.train=[{clips_manifest}]",
        "data.mixing=[synthetic=2,jsut=0.5]"])
    with pytest.raises(ConfigError, match=r"data\.mixing: .*jsut"):
        train(config)


def test_cli_reports_bad_setting(tmp_path, capsys):
    from whisper_ja.cli import main

    assert main(["train", "--out", str(tmp_path), "lora.rank=0"]) == 2
    assert "lora.rank" in capsys.readouterr().err


def test_lr_defaults_per_mode_and_recipes_load():
    assert load_config(TrainConfig, overrides=["mode=lora"]).optim.lr == 1e-3
    assert load_config(TrainConfig, overrides=["mode=full"]).optim.lr == 1e-5
    recipes = sorted(CONFIGS.glob("*.yaml"))
    assert {p.name for p in recipes} >= {"paper_tiny_lora_r256.yaml", "paper_tiny_full.yaml",
                                         "cpu_base_lora.yaml", "cpu_base_full.yaml"}
    for path in recipes:
        config = load_config(TrainConfig, path)
        assert config.data.train, path
    paper = load_config(TrainConfig, CONFIGS / "paper_tiny_lora_r256.yaml")
    assert (paper.model, paper.lora.rank, paper.lora.alpha, paper.lora.dropout) == (
        "openai/whisper-tiny", 256, 128.0, 0.25)
    assert paper.lora.target_modules == ("q_proj", "v_proj")


# --- what trains ---------------------------------------------------------------------------

def _counts(model) -> tuple[int, int, set[str]]:
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return (sum(p.numel() for n, p in model.named_parameters() if n in trainable),
            sum(p.numel() for p in model.parameters()), trainable)


def test_lora_trains_only_adapters(tiny_whisper_dir):
    from whisper_ja.model import load_model

    config = load_config(TrainConfig, overrides=["mode=lora", "lora.rank=8"])
    model, counts = prepare_model(load_model(tiny_whisper_dir).model, config)
    trainable, total, names = _counts(model)
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    # r x (in + out) per adapted 384x384 q/v projection: 4+4 layers, 3 attentions, 2 modules.
    assert trainable == counts["trainable_params"] == 12 * 2 * 8 * (384 + 384)
    assert total == counts["total_params"]
    decoder_only = load_config(TrainConfig, overrides=["lora.rank=8", "freeze_encoder=true"])
    model, counts = prepare_model(load_model(tiny_whisper_dir).model, decoder_only)
    assert all(".decoder." in n for n in _counts(model)[2])
    assert counts["trainable_params"] == 8 * 2 * 8 * (384 + 384)


def test_lora_on_the_top_encoder_layers_only_stops_the_backward_pass_there(tiny_whisper_dir):
    from whisper_ja.model import load_model

    config = load_config(TrainConfig, overrides=["lora.rank=8", "lora.encoder_layers=1"])
    model, counts = prepare_model(load_model(tiny_whisper_dir).model, config)
    names = _counts(model)[2]
    # the tiny model has 4 encoder layers: only layer 3 is adapted, and every decoder layer
    assert {n.split(".layers.")[1].split(".")[0] for n in names if ".encoder." in n} == {"3"}
    assert counts["trainable_params"] == (1 + 8) * 2 * 8 * (384 + 384)
    features = torch.randn(1, 80, 3000, requires_grad=False)
    seen: list[str] = []
    for index, layer in enumerate(model.get_base_model().model.encoder.layers):
        layer.register_full_backward_hook(lambda *_, i=index: seen.append(str(i)))
    labels = torch.tensor([[1000, 1001, 1002]])  # any text ids: only the graph matters
    model(input_features=features, labels=labels).loss.backward()
    assert seen == ["3"]  # no backward through the unadapted layers below
    with pytest.raises(ConfigError, match="encoder_layers"):
        prepare_model(load_model(tiny_whisper_dir).model,
                      load_config(TrainConfig, overrides=["lora.encoder_layers=5"]))
    with pytest.raises(ConfigError, match="freeze_encoder"):
        load_config(TrainConfig, overrides=["lora.encoder_layers=1", "freeze_encoder=true"])


@pytest.mark.parametrize(("rslora", "scale"), [(False, 32.0 / 16), (True, 32.0 / 4)])
def test_lora_update_scale_is_alpha_over_rank_or_its_square_root(tiny_whisper_dir, rslora,
                                                                 scale):
    from whisper_ja.model import load_model

    config = load_config(TrainConfig, overrides=["lora.rank=16", "lora.alpha=32",
                                                 f"lora.rslora={str(rslora).lower()}"])
    model, _ = prepare_model(load_model(tiny_whisper_dir).model, config)
    scales = [m.scaling["default"] for m in model.modules() if hasattr(m, "lora_A")]
    assert len(scales) == 12 * 2 and scales == pytest.approx([scale] * len(scales))


def test_full_trains_everything_and_freeze_encoder_exactly_the_encoder(tiny_whisper_dir):
    from whisper_ja.model import load_model

    base = load_model(tiny_whisper_dir).model
    total = sum(p.numel() for p in base.parameters())
    encoder = sum(p.numel() for p in base.get_encoder().parameters())
    model, counts = prepare_model(base, load_config(TrainConfig, overrides=["mode=full"]))
    assert counts["trainable_params"] == counts["total_params"] == total
    frozen_cfg = load_config(TrainConfig, overrides=["mode=full", "freeze_encoder=true"])
    model, counts = prepare_model(load_model(tiny_whisper_dir).model, frozen_cfg)
    assert counts["trainable_params"] == total - encoder
    assert not any(p.requires_grad for p in model.get_encoder().parameters())


# --- labels and SpecAugment reach the model --------------------------------------------------

def _run_with_probes(monkeypatch, config: TrainConfig) -> dict[str, list[torch.Tensor]]:
    """Train with probes: conv1 inputs (train / validation) and the labels of the loss."""
    seen: dict[str, list[torch.Tensor]] = {"train": [], "validation": [], "labels": []}
    def probed(model, cfg):
        model, counts = PREPARE_MODEL(model, cfg)
        whisper = model.get_base_model() if hasattr(model, "get_base_model") else model

        def on_conv1(module, args):
            (seen["train"] if module.training else seen["validation"]).append(args[0].clone())

        whisper.model.encoder.conv1.register_forward_pre_hook(on_conv1)
        return model, counts

    def recorded_step(model, batches, *args, **kwargs):  # the labels each step learns from
        seen["labels"] += [batch["labels"].clone() for batch in batches]
        return ACCUMULATE_GRADIENTS(model, batches, *args, **kwargs)

    monkeypatch.setattr(train_module, "prepare_model", probed)
    monkeypatch.setattr(step_module, "accumulate_gradients", recorded_step)
    train(config)
    return seen


@pytest.mark.slow
def test_specaugment_reaches_training_only_and_modes_share_labels(
        tmp_path, tiny_whisper_dir, clips_manifest, monkeypatch, one_thread):
    common = (f"data.validation=[{clips_manifest}]", "run.validate_at_start=true",
              "run.validate_every=0")
    lora = _run_with_probes(monkeypatch, tiny_config(
        tmp_path / "lora", tiny_whisper_dir, clips_manifest, "mode=lora", *common))
    full = _run_with_probes(monkeypatch, tiny_config(
        tmp_path / "full", tiny_whisper_dir, clips_manifest, "mode=full", *common))
    clean = _run_with_probes(monkeypatch, tiny_config(
        tmp_path / "clean", tiny_whisper_dir, clips_manifest, "mode=lora",
        "specaugment.enabled=false", *common))
    # Same data and seed, so the batches match: only SpecAugment tells training inputs apart.
    assert len(lora["train"]) == len(clean["train"]) == 2
    for augmented, plain in zip(lora["train"], clean["train"], strict=True):
        assert augmented.shape == plain.shape
        changed = augmented != plain
        assert changed.any()
        assert changed.float().mean() < 0.5  # masks, not noise
    # Validation (before and after training) sees the clean features in every run.
    assert lora["validation"] and len(lora["validation"]) == len(clean["validation"])
    for augmented, plain in zip(lora["validation"], clean["validation"], strict=True):
        assert torch.equal(augmented, plain)
    # LoRA and full fine-tuning learn from byte-identical label ids, which start with the
    # Japanese transcription prefix as the tokenizer spells it (ids looked up, not literals).
    tokenizer = AutoTokenizer.from_pretrained(tiny_whisper_dir)
    prefix = tokenizer.convert_tokens_to_ids(["<|ja|>", "<|transcribe|>", "<|notimestamps|>"])
    assert tokenizer.decode(prefix) == "<|ja|><|transcribe|><|notimestamps|>"
    assert len(lora["labels"]) == len(full["labels"]) == 2
    for a, b in zip(lora["labels"], full["labels"], strict=True):
        assert torch.equal(a, b)
        assert (a[:, :3] == torch.tensor(prefix)).all()


# --- output folder and resume --------------------------------------------------------------

@pytest.mark.slow
def test_output_folder_loads_back(tmp_path, tiny_whisper_dir, clips_manifest, one_thread):
    from peft import PeftModel

    from whisper_ja.model import load_model

    out = tmp_path / "run"
    result = train(tiny_config(out, tiny_whisper_dir, clips_manifest,
                               f"data.validation=[{clips_manifest}]", "run.validate_every=1"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary
    assert summary["steps"] == 2 and summary["best_val_cer"] is not None
    assert summary["trainable_params"] < summary["total_params"]
    assert summary["validation_is_synthetic_speech"] is True
    assert {"config.yaml", "log.jsonl", "adapter_config.json", "adapter_model.safetensors",
            "tokenizer.json", "whisper_ja.json"} <= {p.name for p in out.iterdir()}
    assert load_config(TrainConfig, out / "config.yaml") == result_config(out)
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_whisper_dir)
    model = PeftModel.from_pretrained(load_model(tiny_whisper_dir).model, out)
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) == \
        summary["trainable_params"]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "val_cer" in r] == [1, 2]


def result_config(out: Path) -> TrainConfig:
    return load_config(TrainConfig, out / "config.yaml")


class Crash(RuntimeError):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("mode_settings", [
    ("mode=lora", "lora.dropout=0.3"),  # dropout: the restored RNG state matters
    ("mode=full", "optim.grad_accum=2", "optim.batch_size=1"),  # accumulation, epoch edges
])
def test_resume_after_crash_matches_uninterrupted_run(
        tmp_path, tiny_whisper_dir, clips_manifest, monkeypatch, one_thread, mode_settings):
    settings = ("optim.max_steps=4", "run.save_every=2", "optim.warmup_steps=1",
                "run.log_every=1", *mode_settings)
    straight = train(tiny_config(tmp_path / "a", tiny_whisper_dir, clips_manifest, *settings))

    real_step = train_module.train_step

    def crash_at_step_3(*args, **kwargs):
        if args[-1] == 2:  # the 3rd step (0-based step counter), after the step-2 checkpoint
            raise Crash("simulated kill")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", crash_at_step_3)
    with pytest.raises(Crash):
        train(tiny_config(tmp_path / "b", tiny_whisper_dir, clips_manifest, *settings))
    monkeypatch.setattr(train_module, "train_step", real_step)
    with pytest.raises(ConfigError, match="out: .*--resume"):
        train(tiny_config(tmp_path / "b", tiny_whisper_dir, clips_manifest, *settings))
    # A changed learning rate would make a hybrid run: refused, naming the key and both values.
    with pytest.raises(ConfigError, match=r"resume: .*optim\.lr \(was .*, now 0\.0123\)"):
        train(tiny_config(tmp_path / "b", tiny_whisper_dir, clips_manifest, *settings,
                          "resume=true", "optim.lr=0.0123"))
    # Settings that cannot change the weights may differ.
    resumed = train(tiny_config(tmp_path / "b", tiny_whisper_dir, clips_manifest, *settings,
                                "resume=true", "run.keep_checkpoints=3"))

    assert resumed.summary["steps"] == straight.summary["steps"] == 4
    assert resumed.summary["final_train_loss"] == pytest.approx(
        straight.summary["final_train_loss"], rel=1e-6)
    weights = ("adapter_model.safetensors" if "mode=lora" in mode_settings
               else "model.safetensors")
    a = load_file(tmp_path / "a" / weights)
    b = load_file(tmp_path / "b" / weights)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    # The log reads as one run: each step logged once.
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4]


@pytest.mark.parametrize(("cuda", "cuda_bf16", "cpu_bf16", "auto"), [
    (False, False, False, "no"),    # AVX2-only CPU: fp32
    (False, False, True, "bf16"),   # CPU with AVX512-bf16
    (True, True, False, "bf16"),    # Ampere or newer
    (True, False, False, "fp16"),   # older GPU
])
def test_precision_setting_follows_the_hardware(monkeypatch, cuda, cuda_bf16, cpu_bf16, auto):
    from whisper_ja.training.settings import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda_bf16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: cpu_bf16)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert resolve_precision("auto") == auto
    assert resolve_precision("fp32") == "no"
    if not cuda:
        with pytest.raises(ConfigError, match="precision: fp16 needs a CUDA GPU"):
            resolve_precision("fp16")


@pytest.mark.slow
def test_best_checkpoint_kept_and_early_stopping(tmp_path, tiny_whisper_dir, clips_manifest,
                                                 monkeypatch, one_thread):
    """Validation CERs are scripted so the patience logic is checked exactly."""
    scripted = iter([0.5, 0.4, 0.45, 0.47, 0.3, 0.2])
    monkeypatch.setattr(train_module, "validate", lambda *args: next(scripted))
    out = tmp_path / "run"
    summary = train(tiny_config(
        out, tiny_whisper_dir, clips_manifest, f"data.validation=[{clips_manifest}]",
        "optim.max_steps=6", "run.validate_every=1", "run.patience=2", "run.save_every=1",
        "run.keep_checkpoints=10", "run.tensorboard=true")).summary
    assert summary["stopped_early"] is True
    assert summary["steps"] == 4  # two validations without a better CER after step 2
    assert (summary["best_val_cer"], summary["best_step"]) == (0.4, 2)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "early_stop" for r in log)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # The published adapter is the step-2 weights, not the last ones.
    published = load_file(out / "adapter_model.safetensors")
    at_step = {k.replace(".default", ""): v for k, v in
               load_file(out / "checkpoints" / "step-00000002" / "model.safetensors").items()}
    last = {k.replace(".default", ""): v for k, v in
            load_file(out / "checkpoints" / "step-00000004" / "model.safetensors").items()}
    assert published.keys() == at_step.keys()
    assert all(torch.equal(published[k], at_step[k]) for k in published)
    assert not all(torch.equal(published[k], last[k]) for k in published)
