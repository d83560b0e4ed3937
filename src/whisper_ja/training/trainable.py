"""Making a loaded Whisper trainable: LoRA adapters or all weights, and the optimizer over them.

Both modes start from the same loaded model and differ only here, so a LoRA run and a full run
of one config see the same data, labels and schedule (the paper's scripts did not).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.optimization import Adafactor

from whisper_ja.config import ConfigError
from whisper_ja.model.context import enable_dynamic_context
from whisper_ja.model.quantize import quantize_frozen_base
from whisper_ja.training.settings import TrainConfig

__all__ = ["build_optimizer", "prepare_model"]


def prepare_model(model: Any, config: TrainConfig) -> tuple[Any, dict[str, int]]:
    """Make ``model`` trainable as ``config`` says; returns it with parameter counts.

    LoRA: every original weight frozen, adapters on ``lora.target_modules`` (decoder only
    with ``freeze_encoder``), the base optionally held in 8 or 4 bits (``quantize_base``, on
    the GPU). Full: every weight trains, or all but the encoder's.
    """
    if config.efficiency.context.dynamic:
        enable_dynamic_context(model)
    # Before the adapters: peft wraps the quantized layers (LoRA only; checked in the config).
    model = quantize_frozen_base(model, config.quantize_base)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.mode == "lora":
        # Imported here, not at the top: peft is heavy; only LoRA runs need it.
        from peft import LoraConfig, get_peft_model

        targets = _lora_targets(config, int(model.config.encoder_layers))
        # peft annotates lora_alpha as int but only divides by it; fractional alphas work.
        alpha: Any = config.lora.alpha
        lora = LoraConfig(r=config.lora.rank, lora_alpha=alpha, use_rslora=config.lora.rslora,
                          lora_dropout=config.lora.dropout, target_modules=targets, bias="none")
        model = get_peft_model(model, lora)
    elif config.freeze_encoder:
        model.get_encoder().requires_grad_(False)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, {"trainable_params": trainable, "total_params": total}


def _lora_targets(config: TrainConfig, encoder_layers: int) -> list[str] | str:
    """The LoRA ``target_modules``: names, or a regex over full names when layers go without.

    Layers go without adapters under ``freeze_encoder`` (every encoder layer) and
    ``lora.encoder_layers`` (all but the top N): no trainable weight below them, so autograd
    stops there and their backward pass is never computed.
    """
    modules = "|".join(config.lora.target_modules)
    top = config.lora.encoder_layers
    if config.freeze_encoder:
        return rf"model\.decoder\..*\.({modules})"
    if top == 0 or top == encoder_layers:
        return list(config.lora.target_modules)
    if top > encoder_layers:
        raise ConfigError(f"lora.encoder_layers: {top}, but the model has {encoder_layers} "
                          "encoder layers")
    adapted = "|".join(str(i) for i in range(encoder_layers - top, encoder_layers))
    return rf"model\.(encoder\.layers\.({adapted})|decoder)\..*\.({modules})"


def build_optimizer(model: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer over the trainable parameters; no weight decay on biases and norms."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": config.optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if config.optim.optimizer == "adafactor":
        return Adafactor(groups, lr=config.learning_rate, scale_parameter=False,
                         relative_step=False, warmup_init=False)
    return torch.optim.AdamW(groups, lr=config.learning_rate)
