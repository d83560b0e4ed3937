"""whisper-ja export: merged hf folders, CTranslate2 folders, model cards, refusals.

Fast tests run on a saved tiny random Whisper and a LoRA adapter made on it here (random,
non-zero LoRA B so that merging changes the weights). The slow test checks CER parity on real
whisper-base with a small benign adapter and synthetic (Open JTalk) speech.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from whisper_ja.errors import ConfigError
from whisper_ja.export.writer import ExportConfig, export_model
from whisper_ja.inference.options import DecodingOptions, GuardSettings, RuntimeSettings
from whisper_ja.model.context import CONTEXT_MARKER
from whisper_ja.model.saving import HF_REQUIRED_FILES
from whisper_ja.model.tokens import special_tokens

# Equivalence checks compare plain greedy ids with other decoders (the transformers pipeline,
# faster-whisper), which know nothing of whisper-ja's guards; tiny random models trip them.
GREEDY = GuardSettings(repetition=False, fallback=False)
# Plain greedy ids: no guard, no silence rule (the other decoders have neither).
PLAIN = DecodingOptions(guards=GREEDY, max_new_tokens=8, no_speech_threshold=None)

SR = 16000


def make_lora_adapter(model, folder: Path, *, seed: int, std: float, rank: int = 4) -> Path:
    """Save a PEFT LoRA adapter on q/v projections, A and B drawn from ``seed`` (B non-zero)."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                                  target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_A" in name:  # peft's own init uses the global random stream
                param.copy_(torch.randn(param.shape, generator=generator) / param.shape[1] ** 0.5)
            elif "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    peft_model.save_pretrained(folder)
    return folder


def noise_clips(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [(0.1 * rng.standard_normal(SR * (2 + i))).astype(np.float32) for i in range(n)]


@dataclass(frozen=True)
class Tiny:
    base: Path
    adapter: Path  # a training-run-shaped folder: adapter, config.yaml, summary.json
    report: Path  # an evaluate report.json
    root: Path


def _training_run(base: Path, folder: Path) -> None:
    """Add what `whisper-ja train` writes next to its adapter: config.yaml and summary.json."""
    from whisper_ja.config import load_config, save_config
    from whisper_ja.training.settings import TrainConfig

    train_config = load_config(TrainConfig, overrides=[
        f"model={base}", "lora.rank=4", "optim.max_steps=300", "optim.lr=0.001",
        "data.train=[synth/train.jsonl]", "data.validation=[synth/validation.jsonl]",
        "efficiency.context.dynamic=true", "efficiency.context.min_frames=1000"])
    save_config(train_config, folder / "config.yaml")
    # What `train` records for decoding: the flag and the policy (a non-default floor here).
    (folder / "whisper_ja.json").write_text(json.dumps(
        {"base_model": str(base), "mode": "lora", "dynamic_context": True,
         "context": {"dynamic": True, "bucket_frames": 100, "min_frames": 1000}}))
    summary = {"mode": "lora", "steps": 300, "best_val_cer": 0.131, "train_clips": 940,
               "validation_corpora": ["synthetic"], "dynamic_context": True}
    (folder / "summary.json").write_text(json.dumps(summary))
    # The marker `train` leaves next to an adapter trained with dynamic context.
    (folder / CONTEXT_MARKER).write_text(json.dumps({"dynamic_context": True}))


def _eval_report(folder: Path) -> Path:
    """A report.json written by whisper-ja's own report code on three scored utterances."""
    from whisper_ja.data.manifest import Utterance
    from whisper_ja.evaluation.report import build_report, write_report
    from whisper_ja.evaluation.runner import score_utterances
    from whisper_ja.inference.clips import ClipResult

    utts = [Utterance(id=f"u{i}", audio="x.wav", text=t, duration=2.0, corpus="synthetic")
            for i, t in enumerate(["今日は良い天気です", "駅まで歩きます", "本を読む"])]
    hyps = [ClipResult(h, (), False) for h in ["今日は良い天気です", "駅まで歩きました", "本"]]
    report = build_report(score_utterances(utts, hyps),
                          meta={"manifest": "data/synth_test.jsonl", "normalizer": "default"},
                          n_resamples=50)
    folder.mkdir()
    write_report(report, folder)
    return folder / "report.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_whisper) -> Tiny:
    from whisper_ja.model import load_model

    root = tmp_path_factory.mktemp("export")
    base = root / "tiny-base"
    tiny_whisper.model.save_pretrained(base)
    tiny_whisper.processor.save_pretrained(base)
    adapter = make_lora_adapter(load_model(base).model, root / "run", seed=1, std=0.2)
    _training_run(base, adapter)
    return Tiny(base=base, adapter=adapter, report=_eval_report(root / "eval"), root=root)


@pytest.fixture(scope="module")
def hf_export(tiny) -> Path:
    out = tiny.root / "hf"
    out.mkdir()  # an existing empty folder is accepted
    export_model(ExportConfig(model=str(tiny.base), adapter=tiny.adapter, to="hf", out=out,
                              eval_report=tiny.report, name="whisper-ja-tiny-test"))
    return out


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def tree_state(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_hf_export_is_merged_japanese_and_decodes_like_the_adapter(tiny, hf_export):
    from transformers import WhisperForConditionalGeneration, pipeline

    from whisper_ja.audio.features import ContextPolicy
    from whisper_ja.inference.engine import live_engine, load_engine
    from whisper_ja.model import load_model

    out = hf_export
    files = {p.name for p in out.iterdir()}
    assert set(HF_REQUIRED_FILES) | {"README.md"} <= files
    assert "adapter_config.json" not in files  # merged: no peft needed to load it

    base = load_model(tiny.base)
    exported = load_model(out)
    q_proj = "model.decoder.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(base.model.state_dict()[q_proj], exported.model.state_dict()[q_proj])

    clips = noise_clips(1)

    def decoded(model: Path, adapter: Path | None = None, context: str = "full"):
        engine = load_engine(str(model), str(adapter) if adapter else None,
                             RuntimeSettings(backend="transformers", context=context), PLAIN)
        return engine, [r.token_ids for r in engine.decode_clips(clips)]

    _, ids_base = decoded(tiny.base)
    _, ids_adapter = decoded(tiny.base, tiny.adapter)
    _, ids_exported = decoded(out)
    assert ids_exported == ids_adapter
    assert ids_adapter != ids_base  # the adapter changes the output, so the merge is tested
    # Both decode with the dynamic context the run was trained with: its recorded 10 s floor.
    with_adapter, short_adapter = decoded(tiny.base, tiny.adapter, "auto")
    merged, short_exported = decoded(out, context="auto")
    assert merged.context == with_adapter.context == "dynamic (batch's longest clip, 10 s floor)"
    assert short_exported == short_adapter

    config = json.loads((out / "generation_config.json").read_text())
    assert config["language"] in ("ja", "<|ja|>") and config["task"] == "transcribe"
    asr = pipeline("automatic-speech-recognition", model=str(out), device="cpu")
    assert tuple(asr.tokenizer.prefix_tokens) == special_tokens(asr.tokenizer).ja_prefix
    # The pipeline runs the stock encoder; whisper-ja on the same stock weights, Japanese forced,
    # must say the same. Its own default is beam search (5): decode greedily like whisper-ja.
    stock = WhisperForConditionalGeneration.from_pretrained(out).eval()
    with live_engine(stock, exported.processor,
                     RuntimeSettings(backend="transformers", context="full"), PLAIN,
                     ContextPolicy()) as engine:
        expected = engine.decode_clips(clips)[0].text
    text = asr(clips[0].copy(), generate_kwargs={"max_new_tokens": 8, "num_beams": 1})["text"]
    assert text.strip() == expected


def test_ct2_export_loads_in_faster_whisper_and_agrees_on_features(tiny, tmp_path):
    from whisper_ja.cli import main
    from whisper_ja.inference.backends.hf import HfBackend
    from whisper_ja.inference.faster import decode_features_ct2, load_faster_whisper
    from whisper_ja.inference.guards import decode_windows
    from whisper_ja.model import load_model

    out = tmp_path / "ct2"  # float32 (no --quantization): the features must give the same ids
    assert main(["export", "--model", str(tiny.base), "--adapter", str(tiny.adapter),
                 "--to", "ct2", "--out", str(out)]) == 0
    assert {"model.bin", "config.json", "tokenizer.json", "preprocessor_config.json",
            "README.md"} <= {p.name for p in out.iterdir()}
    assert load_faster_whisper(str(out), "float32").model.is_multilingual

    merged = HfBackend(load_model(tiny.base, adapter=tiny.adapter), context="full")
    clips = noise_clips(2)
    features = load_model(tiny.base).processor.feature_extractor(
        clips, sampling_rate=SR, return_tensors="np").input_features
    encoded = merged.encode_features(torch.from_numpy(features), [c.size / SR for c in clips])
    hf_ids = [r.ids for r in decode_windows(merged, encoded, range(len(clips)), PLAIN,
                                            timestamps=False)]
    ct2_ids = decode_features_ct2(out, features, max_new_tokens=8, compute_type="float32")
    assert ct2_ids == hf_ids

    card = (out / "README.md").read_text()
    assert front_matter(card)["library_name"] == "ctranslate2"
    assert "**dynamic encoder context**" in card  # from the training run's config.yaml
    assert "always decodes with a 30 s context" in card
    assert "never fewer than 1000 (10 s)" in card  # the recorded policy, not the default
    assert "float32 weights" in card
    # The export remembers the policy it was trained with; the ct2 path decodes with it.
    from whisper_ja.inference.faster import resolve_context

    assert resolve_context(out, "auto").min_frames == 1000


def test_adapter_made_for_another_base_is_refused_and_nothing_written(tiny, tmp_path):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from whisper_ja.model import tiny_random_whisper

    other = tiny_random_whisper(seed=1)
    narrow = tmp_path / "narrow-base"  # another shape: d_model 256 instead of 384
    config = WhisperConfig(**{**other.model.config.to_dict(), "d_model": 256,
                              "encoder_attention_heads": 4, "decoder_attention_heads": 4})
    WhisperForConditionalGeneration(config).save_pretrained(narrow)
    other.processor.save_pretrained(narrow)
    renamed = tmp_path / "same-shape-base"  # same shapes, other weights and name
    other.model.save_pretrained(renamed)
    other.processor.save_pretrained(renamed)

    out = tmp_path / "out" / "never"
    with pytest.raises(ConfigError, match=r"does not fit base model .*narrow-base.*q_proj"):
        export_model(ExportConfig(model=str(narrow), adapter=tiny.adapter, to="hf", out=out))
    with pytest.raises(ConfigError, match=r"was made for base model .*tiny-base"):
        export_model(ExportConfig(model=str(renamed), adapter=tiny.adapter, to="ct2", out=out))
    assert not out.parent.exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]

    export_model(ExportConfig(model=str(renamed), adapter=tiny.adapter, to="hf", out=out,
                              allow_base_mismatch=True))
    assert (out / "model.safetensors").is_file()


def test_non_empty_output_folder_is_refused_untouched(tiny, tmp_path, capsys):
    from whisper_ja.cli import main

    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    os.utime(out / "keep.txt", ns=(1, 1))
    before = tree_state(out)
    with pytest.raises(ConfigError, match="not empty"):
        export_model(ExportConfig(model=str(tiny.base), adapter=tiny.adapter, to="hf", out=out))
    code = main(["export", "--model", str(tiny.base), "--adapter", str(tiny.adapter),
                 "--to", "ct2", "--out", str(out)])
    assert code == 2
    assert f"{out} exists and is not empty" in capsys.readouterr().err
    assert tree_state(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_adapter_folder_is_found_in_a_training_run(tmp_path):
    from whisper_ja.export.checks import find_adapter_folder

    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "best" / "adapter_config.json").write_text("{}")
    assert find_adapter_folder(run) == run / "best"  # a run stopped before its final copy
    (run / "adapter_config.json").write_text("{}")
    assert find_adapter_folder(run) == run  # the run's result, at its top
    (tmp_path / "two" / "a").mkdir(parents=True)
    (tmp_path / "two" / "b").mkdir()
    for sub in ("a", "b"):
        (tmp_path / "two" / sub / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="several adapters"):
        find_adapter_folder(tmp_path / "two")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no PEFT adapter"):
        find_adapter_folder(tmp_path / "empty")


def test_bad_settings_name_the_setting(tmp_path):
    from whisper_ja.config import ConfigError

    with pytest.raises(ConfigError, match="quantization"):
        ExportConfig(out=tmp_path / "x", to="hf", quantization="int8")
    with pytest.raises(ConfigError, match="adapter"):
        ExportConfig(out=tmp_path / "x", adapter=tmp_path / "missing")
    with pytest.raises(ConfigError, match="eval_report"):
        ExportConfig(out=tmp_path / "x", eval_report=tmp_path / "missing.json")


def test_model_card_has_training_evaluation_and_dynamic_context(tiny, hf_export):
    from whisper_ja.export.card import read_eval_report

    (row,), normalizer = read_eval_report(tiny.report)
    card = (hf_export / "README.md").read_text()
    meta = front_matter(card)
    assert meta["base_model"] == str(tiny.base) and meta["library_name"] == "transformers"
    (result,) = meta["model-index"][0]["results"]
    assert meta["model-index"][0]["name"] == "whisper-ja-tiny-test"
    assert result["task"]["type"] == "automatic-speech-recognition"
    assert result["dataset"]["name"] == "synth_test"
    metrics = {m["type"]: m["value"] for m in result["metrics"]}
    assert metrics == {"cer": round(100 * row.cer, 2), "wer": round(100 * row.wer, 2)}
    assert 0 < row.cer < 1 and row.utterances == 3 and row.synthetic
    assert normalizer == "default"
    assert f"| {100 * row.cer:.2f} (" in card  # the table shows the CER with its interval
    assert "| `lora.rank` | 4 |" in card and "| `best_val_cer` | 0.131 |" in card
    assert "synth/train.jsonl" in card and "**synthetic speech**" in card
    assert "**dynamic encoder context**" in card
    saved = json.loads((hf_export / "config.json").read_text())
    assert saved["whisper_ja_dynamic_context"] is True
    from whisper_ja.model import load_model
    from whisper_ja.model.context import uses_dynamic_context

    assert uses_dynamic_context(load_model(hf_export).model)  # decoded as it was trained
    # The training run's context policy (a non-default 10 s floor) is recorded and shown.
    from whisper_ja.audio.features import ContextPolicy
    from whisper_ja.inference.engine import load_engine
    from whisper_ja.model.record import recorded_policy

    recorded = ContextPolicy(dynamic=True, bucket_frames=100, min_frames=1000)
    assert json.loads((hf_export / "whisper_ja.json").read_text())["context"]["min_frames"] \
        == 1000
    assert recorded_policy(hf_export) == recorded
    # What `evaluate --model EXPORT` decodes with, on either backend (auto: the cached
    # CTranslate2 conversion).
    for backend in ("transformers", "auto"):
        engine = load_engine(str(hf_export), None, RuntimeSettings(backend=backend),
                             DecodingOptions())
        assert engine.backend.policy == recorded
    assert "never fewer than 1000 (10 s)" in card


def test_card_without_training_or_evaluation_says_so():
    from whisper_ja.export.card import CardInfo, render_model_card

    card = render_model_card(CardInfo(name="m", base_model="openai/whisper-base",
                                      export_format="ct2", quantization="int8"))
    meta = front_matter(card)
    assert "model-index" not in meta and meta["license"] == "mit"
    assert "int8 weights" in card and "No evaluation report" in card
    assert "No training record" in card and "dynamic encoder context" not in card


CT2_CER_MARGIN = 0.04
"""Largest CER difference (absolute) allowed between CTranslate2 and whisper-ja's decoding of the
same weights: faster-whisper pads features, not the waveform, to 30 s, and int8 rounds the
weights. On these four clips (53 reference characters) that is two characters; float32 on
identical features must give identical text."""


@pytest.mark.slow
def test_exports_keep_the_adapters_cer_on_whisper_base(ja_clips, tmp_path):
    """Synthetic speech (Open JTalk): hf export = adapter exactly; ct2 within CT2_CER_MARGIN."""
    from transformers import pipeline

    from whisper_ja.audio.io import load_audio
    from whisper_ja.config import load_config
    from whisper_ja.data.manifest import Utterance, write_manifest
    from whisper_ja.evaluation.runner import EvaluateConfig, evaluate
    from whisper_ja.inference.engine import load_engine
    from whisper_ja.inference.faster import convert_ct2, decode_features_ct2
    from whisper_ja.model import load_model
    from whisper_ja.text.metrics import cer

    base = load_model("openai/whisper-base")  # a fresh copy: peft changes it in place
    adapter = make_lora_adapter(base.model, tmp_path / "adapter", seed=0, std=0.003, rank=8)
    manifest = tmp_path / "test.jsonl"
    write_manifest(manifest, [Utterance(id=f"c{i}", audio=str(c.path), text=c.text,
                                        duration=len(c.audio) / c.sample_rate,
                                        corpus="synthetic") for i, c in enumerate(ja_clips)])

    def run_evaluate(name: str, **model) -> tuple[float, list[str]]:
        # transformers at 30 s: what the pipeline runs, so its text can be compared exactly
        report = evaluate(load_config(EvaluateConfig, base={
            "manifest": manifest, "out": tmp_path / name, "bootstrap": 10, "progress": False,
            "backend": "transformers", "context": "full", **model}))
        rows = [json.loads(line) for line in (report.out_dir / "hypotheses.jsonl").open()]
        return report.cer, [row["hyp"] for row in rows]

    exports = {kind: tmp_path / kind for kind in ("hf", "ct2", "ct2-int8")}
    export_model(ExportConfig(adapter=adapter, to="hf", out=exports["hf"]))
    export_model(ExportConfig(adapter=adapter, to="ct2", out=exports["ct2"]))
    # int8: the converter call of `export --to ct2 --quantization int8` on the merged folder
    # (export_model's int8 path itself is tested on tiny in tests/model/test_faster.py).
    convert_ct2(exports["hf"], exports["ct2-int8"], "int8")
    cer_adapter, hyps_adapter = run_evaluate("adapter", adapter=adapter)
    cer_hf, hyps_hf = run_evaluate("hf", model=str(exports["hf"]))
    assert hyps_hf == hyps_adapter and cer_hf == cer_adapter
    assert cer_adapter < 0.5  # the adapter is benign: whisper-base still transcribes

    asr = pipeline("automatic-speech-recognition", model=str(exports["hf"]), device="cpu")
    piped = asr(load_audio(ja_clips[0].path), generate_kwargs={"num_beams": 1})["text"]
    assert piped.strip() == hyps_adapter[0]

    processor = load_model(exports["hf"]).processor
    refs = [c.text for c in ja_clips]
    features = processor.feature_extractor([load_audio(c.path) for c in ja_clips], sampling_rate=SR,
                                      return_tensors="np").input_features
    tokenizer = processor.tokenizer
    audios = [load_audio(c.path) for c in ja_clips]
    for kind in ("ct2", "ct2-int8"):
        same_input = [tokenizer.decode(ids, skip_special_tokens=True).strip()
                      for ids in decode_features_ct2(exports[kind], features)]
        runtime = RuntimeSettings(backend="ct2",
                                  compute_type="float32" if kind == "ct2" else "int8")
        engine = load_engine(str(exports[kind]), None, runtime, DecodingOptions())
        decoded = [r.text for r in engine.decode_clips(audios)]
        cer_same_input, cer_engine = cer(refs, same_input).rate, cer(refs, decoded).rate
        print(f"{kind}: CER adapter {cer_adapter:.4f}, same features {cer_same_input:.4f}, "
              f"engine on CTranslate2 {cer_engine:.4f} (synthetic speech)")
        if kind == "ct2":  # float32 on identical features: the same text
            assert same_input == hyps_adapter
        assert abs(cer_same_input - cer_adapter) <= CT2_CER_MARGIN
        assert abs(cer_engine - cer_adapter) <= CT2_CER_MARGIN
