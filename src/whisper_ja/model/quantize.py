"""A frozen 8-bit or 4-bit base for LoRA on large models (bitsandbytes, CUDA only).

The seed paper loaded its base in 8-bit. Here the loaded float model's linear layers (all but the
output projection, which is tied to the token embeddings) are swapped for bitsandbytes'
``Linear8bitLt`` / ``Linear4bit`` (NF4, bfloat16 compute) holding the same weights, and moved to
the GPU, which is when bitsandbytes quantizes them. peft then puts its LoRA layers on top of the
quantized ones. This is what transformers does for ``from_pretrained(quantization_config=...)``,
done after loading so that every source whisper-ja loads from (hub, folder, CTranslate2
import) can be quantized.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from whisper_ja.errors import ConfigError

__all__ = ["QuantizeBase", "check_quantization_possible", "quantize_frozen_base"]

QuantizeBase = Literal["none", "8bit", "4bit"]
_KEEP = ("proj_out",)  # tied to the embeddings: stays in float


def check_quantization_possible(bits: QuantizeBase, setting: str = "quantize_base") -> None:
    """Refuse a quantized base where bitsandbytes cannot run it.

    Raises:
        ConfigError: no CUDA GPU is visible, or bitsandbytes is not installed.
    """
    if bits == "none":
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"{setting}: a {bits} base needs a CUDA GPU (bitsandbytes); none is "
                          "visible here. Use quantize_base=none on a CPU")
    try:
        # Imported here, not at the top: bitsandbytes is an optional GPU-only dependency.
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"{setting}: a {bits} base needs bitsandbytes "
                          "(pip install 'whisper-ja[gpu]')") from err


def _quantized_linear(linear: nn.Linear, bits: QuantizeBase) -> nn.Module:
    # Imported here, not at the top: bitsandbytes is optional (GPU only); CPU runs skip it.
    import bitsandbytes as bnb

    weight = linear.weight.data.to(torch.float16)
    layer: nn.Module
    if bits == "8bit":
        layer = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features,
                                    bias=linear.bias is not None, has_fp16_weights=False,
                                    threshold=6.0)
        layer.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        layer = bnb.nn.Linear4bit(linear.in_features, linear.out_features,
                                  bias=linear.bias is not None, compute_dtype=torch.bfloat16,
                                  quant_type="nf4")
        layer.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4")
    if linear.bias is not None:
        layer.bias = nn.Parameter(linear.bias.data.clone(), requires_grad=False)
    return layer


def quantize_frozen_base(model: Any, bits: QuantizeBase,
                         device: torch.device | None = None) -> Any:
    """Freeze ``model`` and quantize its linear layers in place; returns it on the GPU.

    Args:
        model: A float ``WhisperForConditionalGeneration`` (on the CPU).
        bits: ``8bit`` or ``4bit`` (``none`` returns the model untouched).
        device: The CUDA device (default: the current one).

    Raises:
        ConfigError: see :func:`check_quantization_possible`.
    """
    if bits == "none":
        return model
    check_quantization_possible(bits)
    model.requires_grad_(False)
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and not name.endswith(_KEEP)]
    for name, linear in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, _quantized_linear(linear, bits))
    # Moving to the GPU is when bitsandbytes quantizes the weights.
    return model.to(device or torch.device("cuda", torch.cuda.current_device()))
