"""int8 dynamic quantization of a Whisper model's linear layers, for CPU decoding.

``torch.ao.quantization.quantize_dynamic`` stores every ``nn.Linear`` weight as int8 and
quantizes activations on the fly, per batch; on CPUs without bf16 units it is the transformers
path's cheapest speed-up (measured in ``benchmarks/decode_speed.py``). Decoding only: the
quantized model has no gradients.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["quantize_linear_int8"]


def quantize_linear_int8(model: Any, *, inplace: bool = False) -> Any:
    """The model with its ``nn.Linear`` layers replaced by int8 dynamic-quantized ones.

    Args:
        model: A plain ``WhisperForConditionalGeneration`` (merge a LoRA adapter first: peft
            layers are not plain linear layers).
        inplace: Quantize ``model`` itself instead of a copy.

    Returns:
        The quantized model in eval mode (CPU only).

    Raises:
        ValueError: the model still carries a peft adapter or is not on the CPU.
    """
    if hasattr(model, "peft_config"):
        raise ValueError("merge the LoRA adapter before quantizing (merge_and_unload)")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("int8 dynamic quantization runs on the CPU only")
    target = model if inplace else copy.deepcopy(model)
    # The output projection shares its weight with the token embedding; quantizing it gives it
    # its own int8 copy, which is what makes the vocabulary projection cheap.
    return torch.ao.quantization.quantize_dynamic(target.eval(), {nn.Linear}, dtype=torch.qint8,
                                                  inplace=True)
