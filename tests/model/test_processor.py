"""The tokenizer prefix, special and timestamp tokens, and forced Japanese generation."""

from __future__ import annotations

from transformers import WhisperProcessor

from whisper_ja.model import JA_PREFIX_IDS
from whisper_ja.model.tokens import EOT_ID


def test_label_prefix_is_exactly_sot_ja_transcribe_notimestamps(tiny_whisper):
    tokenizer = tiny_whisper.processor.tokenizer
    ids = tokenizer("今日は良い天気です。").input_ids
    assert tuple(ids[:4]) == JA_PREFIX_IDS == (50258, 50266, 50359, 50363)
    assert ids[-1] == EOT_ID
    assert tuple(tokenizer.prefix_tokens) == JA_PREFIX_IDS
    assert tokenizer.decode(ids, skip_special_tokens=True) == "今日は良い天気です。"


def test_specials_registered_and_timestamps_added(tiny_whisper):
    tokenizer = tiny_whisper.processor.tokenizer
    assert len(tokenizer) == 51865
    assert tokenizer.convert_tokens_to_ids("<|0.00|>") == 50364
    assert tokenizer.convert_tokens_to_ids("<|30.00|>") == 51864
    specials = set(tokenizer.all_special_ids)
    assert set(range(50257, 50364)) <= specials  # the 107 specials
    assert 50364 not in specials  # timestamps are added tokens, not specials
    text_ids = tokenizer("天気", add_special_tokens=False).input_ids
    with_times = [50364, *text_ids, 50400]
    assert tokenizer.decode(with_times, decode_with_timestamps=True) == "<|0.00|>天気<|0.72|>"


def test_prefix_survives_save_and_reload(tiny_whisper, tmp_path):
    tiny_whisper.processor.save_pretrained(tmp_path)
    reloaded = WhisperProcessor.from_pretrained(tmp_path)
    assert tuple(reloaded.tokenizer("テスト").input_ids[:4]) == JA_PREFIX_IDS
    assert len(reloaded.tokenizer) == 51865


def test_generation_config_forces_japanese_without_timestamps(tiny_whisper):
    generation = tiny_whisper.model.generation_config
    assert generation.language == "ja"
    assert generation.task == "transcribe"
    assert generation.return_timestamps is False
    assert generation.forced_decoder_ids is None
    assert generation.lang_to_id["<|ja|>"] == 50266
    assert len(generation.lang_to_id) == 99
    assert generation.task_to_id == {"transcribe": 50359, "translate": 50358}
