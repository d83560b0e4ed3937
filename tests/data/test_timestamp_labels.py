"""Training labels that keep timestamps and prompts; manifest segments."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_ja.data.collate import (
    IGNORE_INDEX,
    Example,
    build_labels,
    collate,
    prompt_length,
    select_trainable,
)
from whisper_ja.data.manifest import Utterance, read_manifest, write_manifest
from whisper_ja.data.timestamps import LabelMix, TimedText, TimestampVocab, mixed_label_ids
from whisper_ja.errors import ManifestError


@pytest.fixture(scope="module")
def tokenizer(tiny_whisper):
    return tiny_whisper.processor.tokenizer


def _ids(tokenizer, token):
    return tokenizer.convert_tokens_to_ids(token)


def test_plain_labels_are_unchanged_at_probability_zero(tokenizer):
    ids, prompt = mixed_label_ids("今日は晴れ。", (), 2.0, tokenizer, LabelMix(0.0, 0.0, 0), "a")
    assert ids == build_labels("今日は晴れ。", tokenizer) and prompt == 0


def test_single_utterance_gets_start_and_end_timestamps(tokenizer):
    ids, _ = mixed_label_ids("今日は晴れ。", (), 2.345, tokenizer, LabelMix(1.0, 0.0, 0), "a")
    text = tokenizer.decode(ids, decode_with_timestamps=True)
    assert text == ("<|startoftranscript|><|ja|><|transcribe|>"
                    "<|0.00|>今日は晴れ。<|2.34|><|endoftext|>")
    assert _ids(tokenizer, "<|notimestamps|>") not in ids


def test_segments_become_timestamp_pairs(tokenizer):
    segments = (TimedText(0.5, 2.0, "一つ目。"), TimedText(2.6, 4.1, "二つ目。"))
    ids, _ = mixed_label_ids("一つ目。二つ目。", segments, 5.0, tokenizer, LabelMix(1.0, 0.0, 0),
                             "a")
    vocab = TimestampVocab.from_tokenizer(tokenizer)
    stamps = [vocab.to_time(t) for t in ids if vocab.is_timestamp(t)]
    assert stamps == [0.5, 2.0, 2.6, 4.1]


def test_prompt_is_given_but_not_learned(tokenizer):
    ids, length = mixed_label_ids("二つ目。", (), 1.0, tokenizer, LabelMix(0.0, 1.0, 0), "a",
                                  previous_text="一つ目。")
    assert ids[0] == _ids(tokenizer, "<|startofprev|>")
    assert ids[length] == _ids(tokenizer, "<|startoftranscript|>")
    assert prompt_length(ids, tokenizer) == length
    batch = collate([Example("a", "二つ目。", np.zeros((80, 100), np.float32), tuple(ids),
                             length)], 100)
    labels = batch["labels"][0].tolist()
    assert labels[:length] == [IGNORE_INDEX] * length
    assert labels[length] == _ids(tokenizer, "<|ja|>")  # learning starts after <|sot|>
    assert batch["decoder_input_ids"][0, 0] == ids[0]


def test_rates_follow_the_probabilities_and_are_stable(tokenizer):
    mix = LabelMix(0.3, 0.5, seed=7)
    timed = [mix.draw(f"u{i}", "timestamps") < 0.3 for i in range(2000)]
    assert abs(np.mean(timed) - 0.3) < 0.04
    assert timed == [mix.draw(f"u{i}", "timestamps") < 0.3 for i in range(2000)]
    assert np.corrcoef(timed, [mix.draw(f"u{i}", "prompt") < 0.5 for i in range(2000)])[0, 1] < 0.1


def test_select_trainable_uses_the_previous_clip_as_prompt(tokenizer):
    utts = [Utterance(f"u{i}", "a.wav", t, 2.0, "synthetic") for i, t in
            enumerate(["一つ目。", "二つ目。"])]
    _, labels, _ = select_trainable(utts, tokenizer, 448, LabelMix(0.0, 1.0, 0))
    assert prompt_length(labels[0], tokenizer) == 0  # nothing before the first clip
    assert tokenizer.decode(labels[1][1:prompt_length(labels[1], tokenizer)]) == "一つ目。"


def test_manifest_segments_round_trip_and_are_checked(tmp_path):
    path = tmp_path / "m.jsonl"
    utt = Utterance("a", str(tmp_path / "a.wav"), "一つ目。二つ目。", 5.0, "synthetic",
                    segments=(TimedText(0.5, 2.0, "一つ目。"), TimedText(2.6, 4.1, "二つ目。")))
    write_manifest(path, [utt, Utterance("b", str(tmp_path / "b.wav"), "x", 1.0, "synthetic")])
    back = read_manifest(path)
    assert back[0].segments == utt.segments and back[1].segments == ()
    assert '"segments"' not in path.read_text(encoding="utf-8").splitlines()[1]
    path.write_text('{"id": "c", "audio": "c.wav", "text": "x", "duration": 1.0, '
                    '"corpus": "s", "segments": [{"start": 0.5, "end": 3.0, "text": "x"}]}\n',
                    encoding="utf-8")
    with pytest.raises(ManifestError, match="segment 0"):
        read_manifest(path)
