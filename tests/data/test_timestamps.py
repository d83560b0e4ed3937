"""Timestamp tokens: ids from the tokenizer, tokens <-> times, labels; both vocabularies."""

from __future__ import annotations

import pytest

from whisper_ja.data.timestamps import NUM_TIMESTAMP_TOKENS, TimedText, TimestampVocab
from whisper_ja.model.openai_tokenizer import offline_whisper_processor


@pytest.fixture(scope="module")
def v3_tokenizer(tokenizer_cache):
    return offline_whisper_processor(100, num_mel_bins=128, cache=tokenizer_cache).tokenizer


@pytest.fixture(params=["base", "large-v3"])
def tokenizer(request, tiny_whisper, v3_tokenizer):
    return tiny_whisper.processor.tokenizer if request.param == "base" else v3_tokenizer


def test_base_id_comes_from_the_tokenizer_and_moves_in_large_v3(tiny_whisper, v3_tokenizer):
    base = TimestampVocab.from_tokenizer(tiny_whisper.processor.tokenizer)
    v3 = TimestampVocab.from_tokenizer(v3_tokenizer)
    assert base.base == tiny_whisper.processor.tokenizer.convert_tokens_to_ids("<|0.00|>")
    assert v3.base == base.base + 1  # <|yue|> shifts every id from <|translate|> on
    assert len(v3_tokenizer) == 51866 and len(tiny_whisper.processor.tokenizer) == 51865


def test_tokens_and_times_round_trip(tokenizer):
    vocab = TimestampVocab.from_tokenizer(tokenizer)
    for index in (0, 1, 137, 1499, 1500):
        token = vocab.base + index
        seconds = vocab.to_time(token)
        assert seconds == pytest.approx(index * 0.02)
        assert vocab.to_token(seconds) == token
        assert tokenizer.convert_ids_to_tokens(token) == f"<|{seconds:.2f}|>"
    assert vocab.to_token(31.0) == vocab.base + NUM_TIMESTAMP_TOKENS - 1  # clamped
    assert vocab.to_token(-1.0) == vocab.base
    assert not vocab.is_timestamp(vocab.base - 1)
    with pytest.raises(ValueError, match="not a timestamp"):
        vocab.to_time(vocab.base - 1)


def test_timestamped_labels_round_trip(tokenizer):
    vocab = TimestampVocab.from_tokenizer(tokenizer)
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    segments = [TimedText(0.0, 2.46, "今日は良い天気です。"),
                TimedText(3.1, 5.0, "駅まで歩きます。")]
    ids = vocab.label_ids(segments, tokenizer)
    assert vocab.is_timestamp(ids[0]) and vocab.is_timestamp(ids[-1])
    pieces, well_formed = vocab.split(ids, eot)
    assert well_formed
    assert [(s, e, tokenizer.decode(t)) for s, e, t in pieces] == [
        (0.0, 2.46, "今日は良い天気です。"), (3.1, 5.0, "駅まで歩きます。")]
    text = tokenizer.decode(ids, decode_with_timestamps=True)
    assert text.startswith("<|0.00|>今日は") and text.endswith("<|5.00|>")


def test_overlapping_segments_are_refused(tiny_whisper):
    tokenizer = tiny_whisper.processor.tokenizer
    vocab = TimestampVocab.from_tokenizer(tokenizer)
    with pytest.raises(ValueError, match="ordered"):
        vocab.label_ids([TimedText(2.0, 4.0, "a"), TimedText(1.0, 3.0, "b")], tokenizer)


def test_arithmetic_with_a_stub_tokenizer():
    class Stub:
        unk_token_id = 0

        def convert_tokens_to_ids(self, token):
            return {"<|0.00|>": 70000, "<|30.00|>": 71500}.get(token, 0)

    vocab = TimestampVocab.from_tokenizer(Stub())
    assert vocab.to_time(70050) == 1.0 and vocab.to_token(1.0) == 70050
