from collections import Counter

import numpy as np
import pytest
import torch

from whisper_ja.data.collate import (
    IGNORE_INDEX,
    Example,
    build_labels,
    collate,
    epoch_batches,
    epoch_composition,
    mixed_indices,
    select_trainable,
)
from whisper_ja.data.manifest import Utterance
from whisper_ja.model.tokens import special_tokens


@pytest.fixture(scope="module")
def tokenizer(tiny_whisper):
    return tiny_whisper.processor.tokenizer


def test_labels_are_prefix_text_eot_and_decode_back(tokenizer):
    text = "今日はとても良い天気です。"
    ids = build_labels(text, tokenizer)
    specials = special_tokens(tokenizer)
    assert tokenizer.convert_ids_to_tokens(ids[:4]) == [
        "<|startoftranscript|>", "<|ja|>", "<|transcribe|>", "<|notimestamps|>"]
    assert tokenizer.convert_ids_to_tokens(ids[-1]) == "<|endoftext|>"
    assert tokenizer.decode(ids[4:-1]) == text
    assert all(specials.is_text(i) for i in ids[4:-1])


def test_mixed_in_english_is_labelled_english_not_japanese(tokenizer):
    english = Utterance("en", "a.wav", "Good morning.", 1.0, "synthetic-espeak",
                        extra={"language": "en"})
    kept, labels, _ = select_trainable([english], tokenizer, max_label_tokens=64)
    assert tokenizer.convert_ids_to_tokens(labels[0][:4]) == [
        "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    assert labels[0][4:] == build_labels("Good morning.", tokenizer)[4:]
    with pytest.raises(ValueError, match="xx"):
        build_labels("x", tokenizer, language="xx")


def test_collate_shifts_labels_and_pads_with_ignore_index():
    eot = 5  # labels end with their tokenizer's <|endoftext|>; decoder input pads with it
    a = Example("a", "x", np.zeros((80, 120), np.float32), (1, 2, 3, 4, eot))
    b = Example("b", "y", np.ones((80, 250), np.float32), (1, 9, eot))
    batch = collate([a, b], frames=lambda longest: longest + 50)
    assert batch["input_features"].shape == (2, 80, 300)
    assert batch["lengths"].tolist() == [120, 250]
    assert batch["decoder_input_ids"].tolist() == [[1, 2, 3, 4], [1, 9, eot, eot]]
    assert batch["labels"].tolist() == [[2, 3, 4, 5], [9, eot, IGNORE_INDEX, IGNORE_INDEX]]
    # Real frames are kept exactly; a fixed width cuts longer clips.
    assert torch.equal(batch["input_features"][1, :, :250], torch.ones(80, 250))
    assert collate([a, b], frames=200)["lengths"].tolist() == [120, 200]


def test_select_trainable_counts_every_skip(tokenizer):
    utts = [Utterance("ok", "a.wav", "こんにちは", 2.0, "c"),
            Utterance("long", "b.wav", "長い", 31.0, "c"),
            Utterance("empty", "c.wav", "  ", 1.0, "c"),
            Utterance("wordy", "d.wav", "あ" * 400, 5.0, "c")]
    kept, labels, skipped = select_trainable(utts, tokenizer, max_label_tokens=64)
    assert [u.id for u in kept] == ["ok"]
    assert labels[0] == build_labels("こんにちは", tokenizer)
    assert sum(skipped.values()) == 3 and len(skipped) == 3


def test_mixing_weights_repeat_and_subsample_corpora():
    corpora = ["a"] * 10 + ["b"] * 4 + ["c"] * 6
    rng = np.random.default_rng(0)
    chosen = mixed_indices(corpora, {"a": 0.5, "b": 2.0}, rng)
    counts = Counter(corpora[i] for i in chosen)
    assert counts == {"a": 5, "b": 8, "c": 6}
    assert len(set(i for i in chosen if corpora[i] == "a")) == 5  # no repeats when w < 1
    assert Counter(i for i in chosen if corpora[i] == "b") == {10: 2, 11: 2, 12: 2, 13: 2}
    assert epoch_composition(corpora, {"a": 0.5, "b": 2.0}) == {"a": 5, "b": 8, "c": 6}
    assert epoch_composition(corpora, {"a": 1.25}) == {"a": 12, "b": 4, "c": 6}


@pytest.mark.parametrize("grouping", [False, True])
def test_epoch_batches_are_reproducible_cover_everything_and_change_per_epoch(grouping):
    lengths = list(range(100, 2100, 100))
    corpora = ["x"] * len(lengths)
    kwargs = dict(batch_size=4, seed=3, weights={}, length_grouping=grouping)
    first = epoch_batches(lengths, corpora, 0, **kwargs)
    assert first == epoch_batches(lengths, corpora, 0, **kwargs)
    assert sorted(i for b in first for i in b) == list(range(20))
    assert first != epoch_batches(lengths, corpora, 1, **kwargs)
    if grouping:  # similar lengths share a batch: less padding than at random
        spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first])
        assert spread < 1000
