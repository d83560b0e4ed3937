"""The tokenizer prefix, special and timestamp tokens, and forced Japanese generation."""

from __future__ import annotations

import pytest
from transformers import WhisperProcessor

from whisper_ja.errors import ModelError
from whisper_ja.model import special_tokens
from whisper_ja.model.processor import set_japanese_prefix

JA_PREFIX_STRINGS = ["<|startoftranscript|>", "<|ja|>", "<|transcribe|>", "<|notimestamps|>"]


def test_label_prefix_is_exactly_sot_ja_transcribe_notimestamps(tiny_whisper):
    tokenizer = tiny_whisper.processor.tokenizer
    ids = tokenizer("今日は良い天気です。").input_ids
    specials = special_tokens(tokenizer)
    assert tokenizer.convert_ids_to_tokens(ids[:4]) == JA_PREFIX_STRINGS
    assert tuple(ids[:4]) == specials.ja_prefix == tuple(tokenizer.prefix_tokens)
    assert tokenizer.convert_ids_to_tokens(ids[-1]) == "<|endoftext|>" == \
        tokenizer.convert_ids_to_tokens(specials.eot)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "今日は良い天気です。"


def test_specials_registered_and_timestamps_added(tiny_whisper):
    tokenizer = tiny_whisper.processor.tokenizer
    specials = special_tokens(tokenizer)
    first = tokenizer.convert_tokens_to_ids("<|0.00|>")
    assert first == specials.timestamp_begin == specials.no_timestamps + 1
    assert tokenizer.convert_ids_to_tokens(len(tokenizer) - 1) == "<|30.00|>"
    assert len(tokenizer) - first == 1501
    registered = set(tokenizer.all_special_ids)
    assert set(range(specials.eot, first)) <= registered  # every special before the timestamps
    assert first not in registered  # timestamps are added tokens, not specials
    text_ids = tokenizer("天気", add_special_tokens=False).input_ids
    with_times = [first, *text_ids, tokenizer.convert_tokens_to_ids("<|0.72|>")]
    assert tokenizer.decode(with_times, decode_with_timestamps=True) == "<|0.00|>天気<|0.72|>"


def test_prefix_survives_save_and_reload(tiny_whisper, tmp_path):
    tiny_whisper.processor.save_pretrained(tmp_path)
    reloaded = WhisperProcessor.from_pretrained(tmp_path)
    ids = reloaded.tokenizer("テスト").input_ids
    assert reloaded.tokenizer.convert_ids_to_tokens(ids[:4]) == JA_PREFIX_STRINGS
    assert len(reloaded.tokenizer) == len(tiny_whisper.processor.tokenizer)


def test_generation_config_forces_japanese_without_timestamps(tiny_whisper):
    generation = tiny_whisper.model.generation_config
    tokenizer = tiny_whisper.processor.tokenizer
    assert generation.language == "ja"
    assert generation.task == "transcribe"
    assert generation.return_timestamps is False
    assert generation.forced_decoder_ids is None
    assert generation.lang_to_id["<|ja|>"] == tokenizer.convert_tokens_to_ids("<|ja|>")
    assert len(generation.lang_to_id) == special_tokens(tokenizer).num_languages == 99
    assert {task: tokenizer.convert_ids_to_tokens(i)
            for task, i in generation.task_to_id.items()} == {
        "transcribe": "<|transcribe|>", "translate": "<|translate|>"}


class _EnglishOnly:
    """A stand-in for an English-only Whisper tokenizer: no language tokens at all."""

    unk_token_id = 50256
    _vocab = {"<|endoftext|>": 50256, "<|startoftranscript|>": 50257,
              "<|transcribe|>": 50358, "<|notimestamps|>": 50362}

    def convert_tokens_to_ids(self, token):
        return self._vocab.get(token, self.unk_token_id)

    def convert_ids_to_tokens(self, token_id):
        return {v: k for k, v in self._vocab.items()}.get(token_id)

    def __len__(self):
        return 51864


def test_a_tokenizer_without_japanese_is_refused_with_that_reason():
    with pytest.raises(ModelError, match=r"no <\|ja\|> token.*English-only"):
        set_japanese_prefix(_EnglishOnly())
