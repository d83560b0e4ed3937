"""int8 dynamic quantization of the linear layers (the transformers path's CPU speed-up)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from whisper_ja.inference.quantize import quantize_linear_int8


def test_linear_layers_become_int8_and_logits_stay_close(tiny_whisper):
    model = tiny_whisper.model
    quantized = quantize_linear_int8(model)
    kinds = {type(m) for m in quantized.modules()}
    assert nn.Linear not in kinds and torch.ao.nn.quantized.dynamic.Linear in kinds
    assert any(type(m) is nn.Linear for m in model.modules())  # the original is untouched
    features = torch.randn(1, 80, 3000)
    ids = torch.tensor([[50258, 50266, 50359, 50363]])
    with torch.no_grad():
        ref = model(features, decoder_input_ids=ids).logits
        got = quantized(features, decoder_input_ids=ids).logits
    assert not torch.equal(ref, got)  # really quantized
    # Close, relative to the logits' spread: int8 keeps the ranking of likely tokens.
    assert float((ref - got).abs().mean()) < 0.1 * float(ref.std())


def test_peft_models_must_be_merged_first(tiny_whisper):
    class Wrapped(nn.Module):
        peft_config: dict = {"default": None}

    with pytest.raises(ValueError, match="merge the LoRA adapter"):
        quantize_linear_int8(Wrapped())
