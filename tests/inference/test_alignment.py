"""DTW word timing and alignment-head selection (planted heads are recovered)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from whisper_ja.audio.constants import SAMPLE_RATE, TOKENS_PER_SECOND
from whisper_ja.inference.alignment import (
    AlignmentSample,
    alignment_sample,
    dtw_path,
    select_alignment_heads,
    timed_text,
    token_starts,
    word_spans,
    write_alignment_heads,
)


def _brute_force_cost(cost):
    rows, cols = cost.shape
    total = np.full((rows + 1, cols + 1), np.inf)
    total[0, 0] = 0
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            total[i, j] = cost[i - 1, j - 1] + min(total[i - 1, j - 1], total[i - 1, j],
                                                   total[i, j - 1])
    return total[rows, cols]


def test_dtw_finds_the_cheapest_monotonic_path():
    rng = np.random.default_rng(0)
    for _ in range(25):
        cost = rng.random((int(rng.integers(1, 10)), int(rng.integers(1, 25))))
        tokens, positions = dtw_path(cost)
        assert (np.diff(tokens) >= 0).all() and (np.diff(positions) >= 0).all()
        assert cost[tokens, positions].sum() == pytest.approx(_brute_force_cost(cost))


def _diagonal(starts_s, positions):
    """Attention of tokens that start at ``starts_s`` (seconds), one position wide."""
    attention = torch.full((len(starts_s), positions), 1e-4)
    bounds = [round(s * TOKENS_PER_SECOND) for s in starts_s] + [positions]
    for k in range(len(starts_s)):
        attention[k, bounds[k]:bounds[k + 1]] = 1.0
    return attention


def test_token_starts_follow_a_sharp_alignment():
    starts = [0.0, 0.4, 1.0, 1.5, 2.4]
    found, ends = token_starts(_diagonal(starts, 150)[None], 150)
    assert found == pytest.approx(starts, abs=0.041)
    assert ends[-1] == pytest.approx(3.0)


@pytest.fixture(scope="module")
def real_sample(tiny_whisper):
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(4 * SAMPLE_RATE)).astype(np.float32)
    return alignment_sample(tiny_whisper.model, tiny_whisper.processor, audio,
                            [(0.2, "今日は良い天気です。"), (1.6, "駅まで歩きます。"),
                             (2.9, "また明日。")])


def test_alignment_sample_has_the_models_shape(real_sample, tiny_whisper):
    config = tiny_whisper.model.config
    layers, heads, tokens, positions = real_sample.attention.shape
    assert (layers, heads, positions) == (config.decoder_layers,
                                          config.decoder_attention_heads, 200)
    assert [i for i, _ in real_sample.anchors][0] == 0 and tokens > real_sample.anchors[-1][0]


def test_head_selection_recovers_planted_heads(real_sample):
    planted = [(1, 2), (3, 4)]
    samples = []
    rng = np.random.default_rng(1)
    for _ in range(3):
        attention = real_sample.attention.clone()
        tokens = attention.shape[2]
        starts = np.sort(rng.uniform(0.0, 3.8, tokens))
        starts[0] = 0.0
        anchors = tuple((i, float(starts[i])) for i in (0, tokens // 3, 2 * tokens // 3))
        for layer, head in planted:
            attention[layer, head] = _diagonal(list(starts), attention.shape[-1])
        samples.append(AlignmentSample(attention, anchors))
    assert sorted(select_alignment_heads(samples, count=2)) == planted


def test_heads_are_written_where_each_backend_reads_them(tmp_path):
    hf, ct2 = tmp_path / "hf", tmp_path / "ct2"
    hf.mkdir()
    ct2.mkdir()
    (hf / "generation_config.json").write_text('{"max_length": 448}', "utf-8")
    (ct2 / "model.bin").write_bytes(b"")
    (ct2 / "config.json").write_text('{"alignment_heads": [[0, 0]]}', "utf-8")
    write_alignment_heads(hf, [(1, 2), (3, 4)])
    write_alignment_heads(ct2, [(1, 2)])
    assert json.loads((hf / "generation_config.json").read_text("utf-8")) == {
        "max_length": 448, "alignment_heads": [[1, 2], [3, 4]]}
    assert json.loads((ct2 / "config.json").read_text("utf-8"))["alignment_heads"] == [[1, 2]]


def test_timed_text_times_the_text_and_reads_the_probe_in_one_pass(tiny_whisper):
    model, processor = tiny_whisper.model, tiny_whisper.processor
    tokenizer = processor.tokenizer
    prefix = [tokenizer.convert_tokens_to_ids(t) for t in
              ("<|startoftranscript|>", "<|ja|>", "<|transcribe|>")]
    text = tokenizer.encode("今日は雨です", add_special_tokens=False)
    probe = tokenizer.encode("。", add_special_tokens=False)[0]
    audio = (0.1 * np.random.default_rng(1).standard_normal(4 * SAMPLE_RATE)).astype(np.float32)
    features = processor.feature_extractor([audio], sampling_rate=SAMPLE_RATE,
                                           return_tensors="pt").input_features
    with torch.inference_mode():
        state = model.get_encoder()(features).last_hidden_state
        logits = model(encoder_outputs=(state,),
                       decoder_input_ids=torch.tensor([prefix + text])).logits[0]
    starts, probs = timed_text(model, state, prefix, text, 4.0, probe)
    assert starts.shape == (len(text),) and (np.diff(starts) >= 0).all()
    assert starts[0] >= 0.0 and starts[-1] < 4.0  # inside the window's audio
    # P(probe | prefix + text[:k]) for k = 0 .. len(text): rows len(prefix) - 1 onwards
    expected = logits[len(prefix) - 1:].float().softmax(-1)[:, probe].numpy()
    assert probs == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_words_are_runs_of_tokens_that_decode_to_whole_characters(tiny_whisper):
    tokenizer = tiny_whisper.processor.tokenizer
    text = tokenizer.encode("元気出しなよ、", add_special_tokens=False)
    spans = word_spans(text, tokenizer)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert "".join(tokenizer.decode(text[a:b]) for a, b in spans) == "元気出しなよ、"
    assert all("\ufffd" not in tokenizer.decode(text[a:b]) for a, b in spans)
