"""The evaluate command end to end on a tiny random Whisper (fast; no real model needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from whisper_ja.cli import main
from whisper_ja.config import ConfigError, load_config
from whisper_ja.data.manifest import Utterance, write_manifest
from whisper_ja.evaluation.report import read_hypotheses
from whisper_ja.evaluation.runner import EvaluateConfig, evaluate
from whisper_ja.inference.guards import is_looping
from whisper_ja.inference.options import WINDOW_MAX_TOKENS, GuardSettings
from whisper_ja.text.metrics import cer

TEXTS = ["今日はとても良い天気です。", "私は毎朝コーヒーを飲みます。",
         "駅までの道を教えてください。", "この本はとても面白かった。", "東京に行きたいです。"]
# Dynamic context (8 s floor instead of 30 s) and short outputs keep each evaluation quick.
FAST = {"max_new_tokens": 8, "bootstrap": 50, "progress": False, "batch_size": 8,
        "context": "dynamic"}


def _config(**settings) -> EvaluateConfig:
    """``EvaluateConfig`` from settings as users write them (the inline decoding and runtime
    blocks' fields, e.g. ``beams``, ``backend``, read as evaluate's own)."""
    return load_config(EvaluateConfig, base=settings)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("noise_corpus")
    rng = np.random.default_rng(0)
    utts = []
    for i, text in enumerate(TEXTS):
        seconds = 1.0 + 0.5 * i
        audio = (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        path = folder / f"u{i}.wav"
        sf.write(path, audio, 16000)
        utts.append(Utterance(id=f"noise/u{i}", audio=str(path), text=text, duration=seconds,
                              corpus="synthetic", speaker=f"voice{i % 2}"))
    path = folder / "test.jsonl"
    write_manifest(path, utts)
    return path


def test_cli_writes_hypotheses_and_consistent_report(tiny_whisper_dir, manifest, tmp_path):
    out = tmp_path / "run"
    terms = tmp_path / "terms.txt"
    terms.write_text("東京\nコーヒー\n", encoding="utf-8")
    rc = main(["evaluate", "--manifest", str(manifest), "--model", str(tiny_whisper_dir), "--out",
               str(out), "--max-new-tokens", "8", "--bootstrap", "50", "--no-progress",
               "--terms", str(terms)])
    assert rc == 0
    rows = [json.loads(line) for line in (out / "hypotheses.jsonl").read_text("utf-8").splitlines()]
    assert [r["id"] for r in rows] == [f"noise/u{i}" for i in range(len(TEXTS))]
    for row in rows:
        assert {"id", "ref", "hyp", "cer", "looped", "corpus", "speaker"} <= set(row)
    report = json.loads((out / "report.json").read_text("utf-8"))
    refs, hyps = [r["ref"] for r in rows], [r["hyp"] for r in rows]
    assert report["overall"]["cer"]["rate"] == pytest.approx(cer(refs, hyps).rate)
    assert report["overall"]["utterances"] == len(rows)
    assert report["overall"]["looped"] == sum(r["looped"] for r in rows)
    assert report["looped_ids"] == [r["id"] for r in rows if r["looped"]]
    assert set(report["by_speaker"]) == {"voice0", "voice1"}
    assert report["by_speaker"]["voice0"]["utterances"] == 3
    # an untouched model: clips at their own length (8 s floor), long audio's windows at 30 s
    assert report["rtf"] > 0 and report["context"] == (
        "dynamic (batch's longest clip, 8 s floor) for clips, "
        "full (30 s) for long audio's windows")
    # The default backend (auto) decodes a transformers folder on CTranslate2 (cached
    # conversion), int8 on a CPU.
    assert "CTranslate2 int8" in report["decoding"]
    assert report["synthetic"] is True
    assert report["term_recall"]["occurrences"] == 2
    markdown = (out / "report.md").read_text("utf-8")
    assert "SYNTHETIC" in markdown and "Term recall" in markdown
    assert (out / "cer_by_group.png").is_file()


def test_compare_with_previous_run(tiny_whisper_dir, manifest, tmp_path):
    model = str(tiny_whisper_dir)
    # Greedy only: the fallback samples per batch, and limit=4 makes other batches than 5 clips.
    greedy = {**FAST, "guards": GuardSettings(fallback=False)}
    first = evaluate(_config(manifest=manifest, model=model, out=tmp_path / "a", **greedy))
    second = evaluate(_config(manifest=manifest, model=model, out=tmp_path / "b",
                                     compare=tmp_path / "a", limit=4, **greedy))
    comparison = second.data["comparison"]
    # Same model, same audio: identical transcripts, so no difference and nothing significant.
    assert comparison["paired_utterances"] == 4 and comparison["unpaired"] == 1
    assert comparison["metrics"]["cer"]["delta"] == 0.0
    assert not comparison["metrics"]["cer"]["significant"]
    assert (tmp_path / "b" / "cer_before_after.png").is_file()
    assert "Comparison with" in (tmp_path / "b" / "report.md").read_text("utf-8")
    assert first.cer == pytest.approx(
        json.loads((tmp_path / "a" / "report.json").read_text("utf-8"))["overall"]["cer"]["rate"])


@pytest.mark.parametrize("backend", ["auto", "transformers"])
def test_adapter_and_merged_model_give_same_cer(tiny_whisper_dir, tiny_whisper, manifest, tmp_path,
                                                backend):
    from peft import LoraConfig, get_peft_model

    from whisper_ja.model import load_model
    from whisper_ja.model.context import enable_dynamic_context, save_context_marker

    # A LoRA adapter with non-zero B matrices (so it really changes the outputs), saved the way
    # whisper-ja's train saves one fine-tuned with dynamic context: flag plus marker file.
    base = load_model(tiny_whisper_dir).model
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                                                 target_modules=["q_proj", "v_proj"]))
    enable_dynamic_context(peft_model)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    save_context_marker(peft_model, adapter)
    merged_dir = tmp_path / "merged"
    peft_model.merge_and_unload().save_pretrained(merged_dir)
    tiny_whisper.processor.save_pretrained(merged_dir)

    # auto: CTranslate2 on a cached conversion with the adapter merged; transformers: peft.
    settings = {**FAST, "context": "auto", "limit": 3, "backend": backend}
    with_adapter = evaluate(_config(manifest=manifest, model=str(tiny_whisper_dir),
                                           adapter=adapter, out=tmp_path / "ea", **settings))
    merged = evaluate(_config(manifest=manifest, model=str(merged_dir),
                                     out=tmp_path / "em", **settings))
    # An adapter folder given as --model finds its base model by itself.
    as_model = evaluate(_config(manifest=manifest, model=str(adapter),
                                       out=tmp_path / "eam", **settings))
    evaluate(_config(manifest=manifest, model=str(tiny_whisper_dir), out=tmp_path / "ep",
                            **settings))
    hyps = {name: [r.hyp for r in read_hypotheses(tmp_path / name / "hypotheses.jsonl")]
            for name in ("ea", "em", "eam", "ep")}
    assert with_adapter.data["context"].startswith("dynamic")
    assert merged.data["context"] == with_adapter.data["context"]
    assert hyps["ea"] == hyps["em"] == hyps["eam"]
    assert with_adapter.cer == merged.cer == as_model.cer
    assert hyps["ea"] != hyps["ep"]  # the adapter did change the transcripts


def test_repetition_detector_on_constructed_looping_output(tiny_whisper):
    tokenizer = tiny_whisper.processor.tokenizer
    sentence = tokenizer.encode("駅までの道を教えてください。", add_special_tokens=False)
    assert not is_looping(sentence)
    assert is_looping(sentence * 4)  # the same clause over and over: a hallucination loop
    single = tokenizer.encode("あ", add_special_tokens=False)
    assert is_looping(single * 20)


def test_decoding_flags_outputs_that_hit_the_token_limit(tiny_whisper_dir, manifest, tmp_path):
    # A random model rarely emits end-of-text, so with a 3-token limit every output is cut off
    # and must be flagged as looped (counted in the report).
    report = evaluate(_config(manifest=manifest, model=str(tiny_whisper_dir),
                                     out=tmp_path / "r",
                                     max_new_tokens=3, bootstrap=50, progress=False,
                                     context="dynamic", limit=3))
    rows = read_hypotheses(tmp_path / "r" / "hypotheses.jsonl")
    assert report.data["overall"]["looped"] == sum(r.looped for r in rows) > 0


def test_dynamic_context_and_beam_search(tiny_whisper_dir, manifest, tmp_path):
    report = evaluate(_config(manifest=manifest, model=str(tiny_whisper_dir),
                                     out=tmp_path / "d",
                                     beams=2, limit=2, **FAST))
    assert report.data["context"].startswith("dynamic")
    assert "beam search (2)" in report.data["decoding"]
    assert report.data["overall"]["utterances"] == 2


def test_input_errors_name_the_setting(tiny_whisper_dir, manifest, tmp_path):
    with pytest.raises(ConfigError, match="manifest"):
        evaluate(_config(manifest=tmp_path / "missing.jsonl", model=str(tiny_whisper_dir)))
    with pytest.raises(ConfigError, match="compare"):
        evaluate(_config(manifest=manifest, model=str(tiny_whisper_dir), compare=tmp_path))
    with pytest.raises(ConfigError, match="beams"):
        _config(manifest=manifest, beams=0)
    with pytest.raises(ConfigError, match="num_beams"):  # renamed: an unknown setting, named
        _config(manifest=manifest, num_beams=2)
    assert main(["evaluate", "--model", str(tiny_whisper_dir)]) == 2  # no --manifest


def test_retention_suite_receives_the_baseline_model(tmp_path, monkeypatch):
    import whisper_ja.evaluation.retention.suite
    from whisper_ja.evaluation.runner import evaluate

    seen = {}

    def fake_suite(model, adapter, out_dir, **kwargs):
        seen.update(model=model, adapter=adapter, **kwargs)
        return {"suite": "retention"}

    monkeypatch.setattr(whisper_ja.evaluation.runner, "run_retention_suite", fake_suite)
    config = _config(model="runs/full", suite="retention", baseline="openai/whisper-base",
                     out=tmp_path / "ret", compare=tmp_path / "nomix", progress=False,
                     backend="transformers", beams=2, seed=3)
    evaluate(config)
    assert seen["model"] == "runs/full" and seen["baseline"] == "openai/whisper-base"
    assert seen["compare"] == tmp_path / "nomix"
    # The command's decoding and runtime settings are the suite's.
    assert seen["settings"].options == config.decoding and seen["settings"].options.beams == 2
    assert seen["settings"].runtime == config.runtime and seen["settings"].seed == 3


def test_token_limit_fits_the_suite():
    # A dense 30 s window of Japanese with timestamps needs more tokens than a short clip: the
    # one default is the window's (every suite decodes with transcribe's settings).
    assert EvaluateConfig(suite="longform").decoding.max_new_tokens == WINDOW_MAX_TOKENS
    assert EvaluateConfig().decoding.max_new_tokens == WINDOW_MAX_TOKENS
    assert _config(suite="longform", max_new_tokens=64).decoding.max_new_tokens == 64


def test_backend_ct2_evaluates_an_export_with_the_ct2_path(tiny_whisper_dir, manifest, tmp_path):
    from whisper_ja.audio.io import load_audio
    from whisper_ja.data.manifest import read_manifest
    from whisper_ja.export.writer import ExportConfig, export_model
    from whisper_ja.inference.engine import load_engine
    from whisper_ja.inference.options import DecodingOptions, RuntimeSettings

    folder = tmp_path / "ct2"
    export_model(ExportConfig(model=str(tiny_whisper_dir), to="ct2", out=folder))
    utts = read_manifest(manifest)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    with_bad = tmp_path / "with_bad.jsonl"
    write_manifest(with_bad, [*utts, Utterance(id="bad", audio=str(broken), text="x",
                                               duration=1.0, corpus="synthetic")])
    greedy = GuardSettings(repetition=False, fallback=False)
    report = evaluate(_config(manifest=with_bad, model=str(folder), backend="ct2",
                                     compute_type="float32", out=tmp_path / "run",
                                     guards=greedy, **FAST))
    rows = read_hypotheses(tmp_path / "run" / "hypotheses.jsonl")
    assert [r.id for r in rows] == [u.id for u in utts]  # the unreadable one left out...
    assert set(report.data["failed"]) == {"bad"}  # ...and named
    assert "CTranslate2 float32" in report.data["decoding"]
    assert report.data["context"].startswith("dynamic")
    # The texts are the ct2 path's own on those clips (nothing lost or reordered on the way).
    engine = load_engine(str(folder), None, RuntimeSettings(
        backend="ct2", compute_type="float32", context="dynamic"),
        DecodingOptions(max_new_tokens=8, guards=greedy))
    clips = engine.decode_clips([load_audio(u.audio) for u in utts])
    assert [r.hyp for r in rows] == [c.text for c in clips]
