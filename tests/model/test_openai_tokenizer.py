"""The offline large-v3 tokenizer, built from OpenAI's BPE ranks, checked against strings."""

from __future__ import annotations

import json
import tarfile

import pytest
import tiktoken

from whisper_ja.errors import OfflineModelError
from whisper_ja.model import openai_tokenizer, special_tokens
from whisper_ja.model.offline import find_wheel_data
from whisper_ja.model.openai_tokenizer import (
    offline_whisper_processor,
    read_openai_assets,
    whisper_special_token_strings,
)

# OpenAI's own construction (whisper/tokenizer.py, get_encoding): GPT-2's pattern.
PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
TEXTS = ("今日はとても良い天気です。", " Hello world, it's 2026!",
         "東京特許許可局　きゃりー 123456", "  二重の空白と\n改行", "ｶﾀｶﾅ、全角ＡＢＣ、絵文字🙂")


@pytest.fixture(scope="module")
def assets():
    return read_openai_assets()


@pytest.fixture(scope="module")
def v3(tokenizer_cache):
    return offline_whisper_processor(100, num_mel_bins=128, cache=tokenizer_cache)


def test_large_v3_special_tokens_are_the_strings_they_must_be(v3):
    tokenizer = v3.tokenizer
    specials = special_tokens(tokenizer)
    assert len(tokenizer) == 51866 and specials.num_languages == 100
    named = {"sot": "<|startoftranscript|>", "eot": "<|endoftext|>", "ja": "<|ja|>",
             "transcribe": "<|transcribe|>", "translate": "<|translate|>",
             "no_timestamps": "<|notimestamps|>", "prev_text": "<|startofprev|>",
             "no_speech": "<|nospeech|>", "timestamp_begin": "<|0.00|>"}
    assert {name: tokenizer.convert_ids_to_tokens(getattr(specials, name)) for name in named} \
        == named
    assert tokenizer.convert_ids_to_tokens(specials.translate - 1) == "<|yue|>"
    assert tokenizer.convert_ids_to_tokens(len(tokenizer) - 1) == "<|30.00|>"
    assert v3.feature_extractor.feature_size == 128


@pytest.mark.parametrize("num_languages", [99, 100])
def test_encodes_exactly_like_openais_tiktoken_encoding(num_languages, assets, tokenizer_cache):
    processor = offline_whisper_processor(num_languages, num_mel_bins=80 + 48 * (
        num_languages == 100), cache=tokenizer_cache)
    specials = whisper_special_token_strings(assets.languages, num_languages)
    openai_names = [t.replace("<|nocaptions|>", "<|nospeech|>") for t in specials]
    reference = tiktoken.Encoding(
        "multilingual", pat_str=PATTERN, mergeable_ranks=assets.ranks,
        special_tokens={t: len(assets.ranks) + i for i, t in enumerate(openai_names)})
    tokenizer = processor.tokenizer
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert ids == reference.encode(text), text
        assert tokenizer.decode(ids) == text
    for ours, openai_name in zip(specials, openai_names, strict=True):
        assert tokenizer.convert_tokens_to_ids(ours) == reference.encode_single_token(openai_name)


def test_the_99_language_build_equals_whisper_base_tokenizer(tokenizer_cache):
    built = offline_whisper_processor(99, num_mel_bins=80, cache=tokenizer_cache).tokenizer
    part1, _ = find_wheel_data()
    base = json.loads((part1 / "tokenizer.json").read_text("utf-8"))
    expected = dict(base["model"]["vocab"]) | {t["content"]: t["id"]
                                               for t in base["added_tokens"]}
    vocab = built.get_vocab()
    assert {t: vocab[t] for t in expected} == expected
    assert len(vocab) - len(expected) == 1501  # whisper-base's file lacks the timestamps


def test_built_once_then_read_from_the_cache(tokenizer_cache, v3, monkeypatch):
    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached tokenizer must not be rebuilt")

    monkeypatch.setattr(openai_tokenizer, "read_openai_assets", no_rebuild)
    again = offline_whisper_processor(100, num_mel_bins=128, cache=tokenizer_cache)
    assert again.tokenizer.get_vocab() == v3.tokenizer.get_vocab()


def test_a_missing_sdist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPER_JA_WHEELS", str(tmp_path))
    monkeypatch.setenv("WHISPER_JA_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(openai_tokenizer.sys, "prefix", str(tmp_path))
    with pytest.raises(OfflineModelError, match="pip download --no-deps --no-binary"):
        offline_whisper_processor(100, cache=tmp_path / "cache")


def test_a_different_sdist_is_refused(tmp_path):
    fake = tmp_path / openai_tokenizer.OPENAI_WHISPER_SDIST
    with tarfile.open(fake, "w:gz"):
        pass
    with pytest.raises(OfflineModelError, match="sha256"):
        read_openai_assets(fake)
