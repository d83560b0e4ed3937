"""Retention (forgetting) suite: English synthesis, language ID, WER, before/after report."""

from __future__ import annotations

import json

import pytest

from whisper_ja.cli import main
from whisper_ja.config import ConfigError
from whisper_ja.data.english import (
    ESPEAK_TRAINING_VOICES,
    ESPEAK_VOICES,
    english_training_sentences,
    retention_sentences,
    synthesize_english_training_set,
    synthesize_retention_set,
)
from whisper_ja.data.manifest import read_manifest
from whisper_ja.evaluation.retention.measure import (
    RetentionResult,
    compare_retention,
    result_from_records,
    word_error_counts,
)
from whisper_ja.evaluation.retention.suite import load_adapted_result, run_retention_suite
from whisper_ja.inference.backend import vocabulary_of
from whisper_ja.inference.engine import live_engine
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings


def test_english_wer_uses_whisper_normalization():
    assert word_error_counts("The train leaves in ten minutes.",
                             "the train leaves in 10 minutes", "en").errors == 0
    counts = word_error_counts("Please open the window.", "Please close window", "en")
    assert (counts.substitutions, counts.deletions, counts.reference_length) == (1, 1, 4)
    assert word_error_counts("Guten Tag!", "", "de").deletions == 2


def test_language_tokens_of_multilingual_whisper(tiny_whisper):
    ids = vocabulary_of(tiny_whisper.processor.tokenizer).languages
    assert len(ids) == 99
    to_token = tiny_whisper.processor.tokenizer.convert_ids_to_tokens
    assert {code: to_token(ids[code]) for code in ("en", "ja", "de")} == {
        "en": "<|en|>", "ja": "<|ja|>", "de": "<|de|>"}


def test_english_training_sentences_are_new_and_seeded():
    first = english_training_sentences(200, seed=1)
    assert len(set(first)) == 200 and first == english_training_sentences(200, seed=1)
    assert first != english_training_sentences(200, seed=2)
    assert not set(first) & set(retention_sentences("en"))
    with pytest.raises(ValueError, match="at most"):
        english_training_sentences(10**6)


@pytest.fixture(scope="module")
def english_set(tmp_path_factory):
    return synthesize_retention_set(tmp_path_factory.mktemp("retention"), ("en", "de"),
                                    progress=False)


@pytest.mark.slow
def test_retention_set_is_labelled_synthetic_english(english_set):
    utts = read_manifest(english_set)
    assert len(utts) == len(retention_sentences("en")) + len(retention_sentences("de"))
    assert {u.extra["language"] for u in utts} == {"en", "de"}
    assert all(u.extra["synthetic"] and u.corpus.startswith("synthetic") for u in utts)
    assert all(u.split == "test" and u.duration > 0.5 for u in utts)
    train = read_manifest(synthesize_english_training_set(english_set.parent / "train", 3,
                                                          progress=False))
    assert [u.split for u in train] == ["train"] * 3
    assert all(u.extra["language"] == "en" for u in train)


@pytest.mark.slow
def test_synth_english_command_writes_training_clips_in_voices_the_test_never_uses(tmp_path):
    assert not set(ESPEAK_TRAINING_VOICES["en"]) & set(ESPEAK_VOICES["en"])
    assert main(["synth-english", "--out", str(tmp_path), "--size", "4", "--no-progress"]) == 0
    train = read_manifest(tmp_path / "manifest.jsonl")
    assert len(train) == 4 and {u.split for u in train} == {"train"}
    assert all(u.extra["language"] == "en" and u.extra["synthetic"] for u in train)
    voices = {u.speaker.removeprefix("espeak-ng:") for u in train}
    assert voices <= set(ESPEAK_TRAINING_VOICES["en"])
    assert not {u.text for u in train} & set(retention_sentences("en"))
    assert main(["synth-english", "--out", str(tmp_path / "x"), "--size", "0"]) == 2


def test_detect_language_picks_the_most_likely_language_token(tiny_whisper):
    import numpy as np

    from whisper_ja.audio.features import ContextPolicy

    model, processor = tiny_whisper.model, tiny_whisper.processor
    audio = [np.zeros(16000, dtype=np.float32)] * 2
    de_id = vocabulary_of(processor.tokenizer).languages["de"]

    def favour_german(_module, _inputs, output):
        output[..., de_id] += 1000.0
        return output

    handle = model.proj_out.register_forward_hook(favour_german)
    try:
        with live_engine(model, processor, RuntimeSettings(backend="transformers"),
                         DecodingOptions(batch_size=1),
                         ContextPolicy()) as engine:
            assert engine.detect_language(audio) == ["de"] * 2
    finally:
        handle.remove()


def _result(hyps: list[str], detected: list[str]) -> RetentionResult:
    refs = ["red green blue pink", "cat dog cow pig"]
    records = []
    for i, (ref, hyp, det) in enumerate(zip(refs, hyps, detected, strict=True)):
        counts = word_error_counts(ref, hyp, "en").__dict__
        records.append({"id": f"u{i}", "language": "en", "detected": det, "reference": ref,
                        "forced": hyp, "identified": hyp, "forced_counts": counts,
                        "identified_counts": counts})
    return result_from_records("m", records)


def test_compare_retention_reports_after_minus_before():
    before = _result(["red green blue pink", "cat dog cow pig"], ["en", "en"])
    after = _result(["red green blue", "cat dog"], ["en", "ja"])
    change = compare_retention(before, after)["en"]
    assert change["wer_forced"]["before"] == 0.0
    assert change["wer_forced"]["after"] == pytest.approx(3 / 8)
    assert change["wer_forced"]["delta"] == pytest.approx(3 / 8)
    assert change["lid_accuracy"] == {"before": 1.0, "after": 0.5, "delta": -0.5}
    other = RetentionResult("x", after.languages, list(reversed(after.records)))
    with pytest.raises(ValueError, match="different utterances"):
        compare_retention(before, other)


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """A tiny model saved as a folder, and a LoRA adapter on it that changes its outputs."""
    from peft import LoraConfig, get_peft_model

    from whisper_ja.model import tiny_random_whisper
    from whisper_ja.model.context import enable_dynamic_context

    root = tmp_path_factory.mktemp("tiny")
    tiny = tiny_random_whisper(seed=0)
    # Shortened encoder input (as fine-tuned models use) keeps the test fast and covers that
    # path of language identification.
    enable_dynamic_context(tiny.model)
    tiny.model.save_pretrained(root / "model")
    tiny.processor.save_pretrained(root / "model")
    peft_model = get_peft_model(tiny.model, LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(root / "adapter")
    return root / "model", root / "adapter"


@pytest.mark.slow
def test_retention_suite_before_and_after_adapter(tiny_folders, english_set, tmp_path):
    from whisper_ja.evaluation.retention.measure import RetentionSettings

    model_dir, adapter_dir = tiny_folders
    quick = RetentionSettings(options=DecodingOptions(max_new_tokens=4),
                              runtime=RuntimeSettings(dtype="bfloat16", device="cpu"),
                              seed=7, n_resamples=50, progress=False)
    report = run_retention_suite(model_dir, adapter_dir, tmp_path, manifest=english_set,
                                 limit=2, settings=quick)
    saved = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(report))
    # The settings it was given are the settings it used, and the report says so.
    assert saved["settings"]["dtype"] == "bfloat16" and saved["settings"]["device"] == "cpu"
    assert saved["settings"]["seed"] == 7 and saved["settings"]["bootstrap"] == 50
    assert saved["settings"]["max_new_tokens"] == 4
    before, after = saved["models"]
    for entry in (before, after):
        en = entry["languages"]["en"]
        assert en["utterances"] == 2 and sum(en["detected"].values()) == 2
        assert 0.0 <= en["lid_accuracy"] <= 1.0
        assert en["wer_forced"][1] <= en["wer_forced"][0] <= en["wer_forced"][2]
    assert "+" in after["model"] and "+" not in before["model"]
    change = saved["changes"]["en"]
    for side, entry in (("before", before), ("after", after)):
        assert change["wer_forced"][side] == pytest.approx(
            entry["languages"]["en"]["wer_forced"][0])
    assert change["lid_accuracy"]["delta"] == pytest.approx(
        after["languages"]["en"]["lid_accuracy"] - before["languages"]["en"]["lid_accuracy"])
    assert "synthetic" in (tmp_path / "report.md").read_text(encoding="utf-8")
    lines = (tmp_path / "hypotheses.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4

    # --compare: this run's adapted model against an earlier run's adapted model. The same
    # adapter again must show no change at all, and the earlier model must be named.
    again = run_retention_suite(model_dir, adapter_dir, tmp_path / "again", manifest=english_set,
                                limit=2, compare=tmp_path, settings=quick)
    assert again["comparison"]["model"] == after["model"] == load_adapted_result(tmp_path).model
    same = again["comparison"]["changes"]["en"]
    assert same["wer_forced"]["delta"] == same["lid_accuracy"]["delta"] == 0.0
    assert "This run minus" in (tmp_path / "again" / "report.md").read_text(encoding="utf-8")
    assert (tmp_path / "again" / "retention.png").is_file()
    with pytest.raises(ConfigError, match="other utterances"):
        run_retention_suite(model_dir, adapter_dir, tmp_path / "x", manifest=english_set,
                            limit=1, compare=tmp_path, settings=quick)
    with pytest.raises(ConfigError, match="holds no retention"):
        run_retention_suite(model_dir, adapter_dir, tmp_path / "y", manifest=english_set,
                            compare=tmp_path / "missing", settings=quick)
