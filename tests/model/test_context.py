"""Dynamic audio context: exactness of the shortened encoder, generate, peft, save/load."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from whisper_ja.model import context
from whisper_ja.model.context import (
    CONFIG_FLAG,
    DynamicContextEncoder,
    EncoderOutputCache,
    apply_saved_context,
    enable_dynamic_context,
    save_context_marker,
    uses_dynamic_context,
)


@pytest.fixture()
def model(tiny_whisper) -> WhisperForConditionalGeneration:
    """A private copy: enabling dynamic context must not leak into the shared fixture."""
    return copy.deepcopy(tiny_whisper.model).eval()


def _features(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 80, frames, generator=generator)


def reference_encoder(encoder: WhisperEncoder, short: torch.Tensor) -> torch.Tensor:
    """The stock 30-s encoder math with attention restricted to the first ``T // 2`` positions.

    The short input is placed at the start of a 3000-frame input of zeros (zeros are what the
    convolutions' own padding sees past the end of the short input), every position of the full
    table is added, and a key mask keeps attention on the real positions: the outputs on those
    positions are then mathematically those of an encoder run on the short input alone.
    """
    batch, mels, frames = short.shape
    keep = frames // 2
    full = torch.zeros(batch, mels, 3000)
    full[:, :, :frames] = short
    with torch.no_grad():
        hidden = torch.nn.functional.gelu(encoder.conv1(full))
        hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
        hidden = hidden + encoder.embed_positions(torch.arange(1500))
        mask = torch.zeros(batch, 1, 1500, 1500)
        mask[..., keep:] = torch.finfo(torch.float32).min
        for layer in encoder.layers:
            hidden = layer(hidden, mask)
        hidden = encoder.layer_norm(hidden)
    return hidden[:, :keep]


@pytest.fixture(scope="module")
def short_case(tiny_whisper) -> tuple[torch.Tensor, torch.Tensor]:
    """Short features and the masked full-context reference output (computed once: slow)."""
    features = _features(2, 800, seed=1)
    return features, reference_encoder(tiny_whisper.model.get_encoder(), features)


def test_full_length_is_bit_identical_to_stock(model):
    features = _features(1, 3000)
    with torch.no_grad():
        stock = model.get_encoder()(features).last_hidden_state
        enable_dynamic_context(model)
        dynamic = model.get_encoder()(features).last_hidden_state
    assert type(model.get_encoder()) is DynamicContextEncoder
    assert torch.equal(stock, dynamic)


def test_stock_encoder_rejects_short_input(model):
    with pytest.raises(ValueError, match="3000"):
        model.get_encoder()(_features(1, 800))


def test_short_context_matches_masked_full_context(model, short_case):
    features, expected = short_case
    enable_dynamic_context(model)
    with torch.no_grad():
        got = model.get_encoder()(features).last_hidden_state
    assert got.shape == (2, 400, 384)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


@pytest.mark.parametrize("wrong", [
    lambda emb, n: emb.weight[1:n + 1],
    lambda emb, n: emb.weight[-n:],
])
def test_wrong_positional_slice_is_caught(model, short_case, monkeypatch, wrong):
    features, expected = short_case
    enable_dynamic_context(model)
    monkeypatch.setattr(context, "_position_rows", wrong)
    with torch.no_grad():
        got = model.get_encoder()(features).last_hidden_state
    assert not torch.allclose(got, expected, atol=1e-4)
    assert (got - expected).abs().max() > 1e-2


@pytest.mark.parametrize("frames", [801, 3002, 0])
def test_bad_frame_counts_raise(model, frames):
    enable_dynamic_context(model)
    with pytest.raises(ValueError, match="mel frames"):
        model.get_encoder()(torch.zeros(1, 80, frames))


def test_enable_is_idempotent_and_recorded(model):
    assert not uses_dynamic_context(model)
    enable_dynamic_context(model)
    generate = model.generate
    enable_dynamic_context(model)
    assert uses_dynamic_context(model)
    assert model.generate == generate
    assert getattr(model.config, CONFIG_FLAG) is True


def test_generate_runs_encoder_on_short_input(model):
    enable_dynamic_context(model)
    seen: list[int] = []
    handle = model.get_encoder().register_forward_hook(
        lambda module, args, out: seen.append(out.last_hidden_state.shape[1]))
    features = _features(1, 800, seed=3)
    out = model.generate(input_features=features, max_new_tokens=3, output_logits=True,
                         return_dict_in_generate=True)
    handle.remove()
    assert seen == [400]  # never padded back to 3000 frames (1500 positions)
    # The first generated step's raw logits equal a plain forward on the same short input.
    prompt_len = out.sequences.shape[1] - len(out.logits)
    prefix = out.sequences[:, :prompt_len]
    with torch.no_grad():
        logits = model(input_features=features, decoder_input_ids=prefix).logits[:, -1]
    assert torch.allclose(out.logits[0], logits, atol=1e-4)


def test_peft_gradient_checkpointing_training_step(model, tiny_whisper):
    from peft import LoraConfig, get_peft_model

    from whisper_ja.data.collate import build_labels

    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    enable_dynamic_context(peft_model)
    assert uses_dynamic_context(peft_model)
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_model.train()
    labels = torch.tensor([build_labels("テスト", tiny_whisper.processor.tokenizer)])
    loss = peft_model(input_features=_features(1, 200), labels=labels).loss
    loss.backward()
    grads = [p.grad for n, p in peft_model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    peft_model.eval()
    generated = peft_model.generate(input_features=_features(1, 200), max_new_tokens=1)
    assert generated.shape[0] == 1


def test_save_and_load_keep_the_flag(model, tmp_path):
    enable_dynamic_context(model)
    features = _features(1, 200)
    with torch.no_grad():
        before = model.get_encoder()(features).last_hidden_state
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())[CONFIG_FLAG] is True
    loaded = WhisperForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert not uses_dynamic_context(loaded)  # transformers alone builds a stock encoder
    assert apply_saved_context(loaded)
    assert uses_dynamic_context(loaded)
    with torch.no_grad():
        after = loaded.get_encoder()(features).last_hidden_state
    assert torch.allclose(before, after, atol=1e-6)


def test_stock_model_is_left_alone(model, tmp_path):
    assert not apply_saved_context(model, tmp_path, None)
    assert not uses_dynamic_context(model)
    assert type(model.get_encoder()) is WhisperEncoder


def test_adapter_marker_restores_context(model, tiny_whisper, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    enable_dynamic_context(peft_model)
    peft_model.save_pretrained(tmp_path)
    save_context_marker(peft_model, tmp_path)
    base = copy.deepcopy(tiny_whisper.model)  # a fresh stock base, as a loader would have
    reloaded = PeftModel.from_pretrained(base, tmp_path)
    assert apply_saved_context(reloaded, tmp_path)
    assert uses_dynamic_context(reloaded)
    (tmp_path / context.CONTEXT_MARKER).write_text("not json")
    with pytest.raises(ValueError, match=context.CONTEXT_MARKER):
        apply_saved_context(copy.deepcopy(tiny_whisper.model), tmp_path)


def test_encoder_output_cache(model, tmp_path):
    with pytest.raises(ValueError, match="frozen"):
        EncoderOutputCache(tmp_path, model)
    model.requires_grad_(False)
    enable_dynamic_context(model)
    cache = EncoderOutputCache(tmp_path, model)
    features = _features(3, 200)
    first = cache.encode(["a", "b", "c"], features)
    assert (cache.hits, cache.misses) == (0, 3)
    with torch.no_grad():
        direct = model.get_encoder()(features).last_hidden_state
    assert torch.allclose(first, direct, atol=1e-2, rtol=1e-2)  # stored as float16
    again = cache.encode(["c", "a"], features[[2, 0]])
    assert (cache.hits, cache.misses) == (2, 3)
    assert torch.equal(again, first[[2, 0]])
    cache.encode(["a"], _features(1, 300))  # other context length: a different entry
    assert cache.misses == 4
    with torch.no_grad():
        model.get_encoder().layer_norm.bias.add_(1.0)  # changed encoder: nothing stale
    assert EncoderOutputCache(tmp_path, model).fingerprint != cache.fingerprint


class _SegmentThenText(LogitsProcessor):
    """Row 0 closes a segment mid-window (two timestamps) and starts another; row 1 ends."""

    def __init__(self, timestamp_id: int, text_id: int, eot_id: int) -> None:
        # After the 4-token prompt: timestamp, timestamp, text, then <|endoftext|>.
        self.script = {4: timestamp_id, 5: timestamp_id, 6: text_id}
        self.eot_id = eot_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.eot_id] = 0.0
        if input_ids.shape[1] in self.script:
            forced[0] = float("-inf")
            forced[0, self.script[input_ids.shape[1]]] = 0.0
        return forced


def test_batched_generate_with_a_sampled_timestamp_decodes_each_window_once(model, tiny_whisper):
    # Found by CI: temperature fallback sampled a timestamp token in one row of a batch; stock
    # generate then sought inside the window and crashed re-slicing input_features (None).
    enable_dynamic_context(model)
    tokenizer = tiny_whisper.processor.tokenizer
    timestamp_id = tokenizer.convert_tokens_to_ids("<|3.00|>")
    text_id = tokenizer.convert_tokens_to_ids("a")
    processor = _SegmentThenText(timestamp_id, text_id, tokenizer.eos_token_id)
    sequences = model.generate(input_features=_features(2, 800, seed=4), max_new_tokens=6,
                               do_sample=True, temperature=0.5,
                               logits_processor=LogitsProcessorList([processor]))
    assert sequences.shape[0] == 2
    assert timestamp_id in sequences[0].tolist()


def test_generate_on_given_encoder_outputs_decodes_each_window_once(model, tiny_whisper):
    # Found by CI again: decoding hands generate its own encoder outputs (no input features);
    # a sampled timestamp must not make it seek inside the window either.
    enable_dynamic_context(model)
    tokenizer = tiny_whisper.processor.tokenizer
    timestamp_id = tokenizer.convert_tokens_to_ids("<|3.00|>")
    processor = _SegmentThenText(timestamp_id, tokenizer.convert_tokens_to_ids("a"),
                                 tokenizer.eos_token_id)
    with torch.no_grad():
        hidden = model.get_encoder()(_features(2, 800, seed=4))
    sequences = model.generate(encoder_outputs=hidden, max_new_tokens=6, do_sample=True,
                               temperature=0.5, logits_processor=LogitsProcessorList([processor]))
    assert sequences.shape[0] == 2
    assert timestamp_id in sequences[0].tolist()
