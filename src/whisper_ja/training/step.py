"""One optimizer step: token-weighted loss across accumulated batches and processes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from whisper_ja.audio.specaugment import spec_augment
from whisper_ja.data.collate import IGNORE_INDEX
from whisper_ja.training.settings import TrainConfig

__all__ = ["accumulate_gradients", "targets_only", "token_loss_sum", "train_step"]


def train_step(model: Any, optimizer: Any, scheduler: Any, batches: list[dict[str, torch.Tensor]],
               config: TrainConfig, accelerator: Accelerator, step: int) -> float:
    """One optimizer step over ``len(batches)`` accumulated batches; returns the step's loss.

    The loss is the mean over every target token of the step (all accumulated batches, all
    processes), as transformers (since 4.46) and torchtune compute it; see
    :func:`accumulate_gradients`.
    """
    loss = accumulate_gradients(model, batches, config, accelerator, step)
    if config.optim.max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), config.optim.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of ``logits`` ``(B, L, V)`` against ``labels`` ``(B, L)``.

    Also takes the target positions alone: ``(N, V)`` against ``(N,)``. Positions labelled
    :data:`IGNORE_INDEX` (padding) count nothing. Whisper's decoder input is already the labels
    shifted right, so logits and labels line up without a shift. Computed in float32 so bf16
    autocast does not round the sum.
    """
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")


@contextmanager
def targets_only(model: Any, targets: torch.Tensor) -> Iterator[None]:
    """Within this block, the output projection of ``model`` runs on target positions only.

    Its input ``(B, L, D)`` is cut to the ``N`` rows where ``targets`` ``(B, L)`` is true, so
    the logits come out ``(N, V)``. The projection onto Whisper's ~52k tokens is ~13% of a
    whisper-base LoRA step, and 43% of the demo's label positions are padding or prompt, whose
    logits the loss ignores. A hook on the projection, not a call of the decoder alone, so the
    forward still goes through the (DDP-) wrapped model.

    Args:
        model: The Whisper model, PEFT-wrapped or not, without distributed wrappers
            (``accelerator.unwrap_model``).
        targets: ``(B, L)`` true where a label counts.
    """
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda _module, args: (args[0][targets],))
    try:
        yield
    finally:
        handle.remove()


def accumulate_gradients(model: Any, batches: list[dict[str, torch.Tensor]], config: TrainConfig,
                         accelerator: Accelerator, step: int) -> float:
    """Forward and backward over one step's batches; returns the step's mean token loss.

    Each batch's summed token loss is divided by the number of target tokens in the whole step
    across processes, so a batch of short labels weighs by its tokens, not as much as a batch of
    long ones. DDP averages gradients over processes; multiplying by the number of processes
    turns that average back into the sum over all tokens.

    SpecAugment is applied here, to the very tensor handed to the model, so it cannot fail to
    reach it; its masks come from a generator seeded by (seed, step, process, batch), which
    makes every step reproducible after a resume.
    """
    model.train()
    local_tokens = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches)
    tokens = int(accelerator.reduce(torch.tensor(local_tokens, device=accelerator.device),
                                    reduction="sum").item())
    scale = accelerator.num_processes / max(tokens, 1)
    total = torch.zeros((), device=accelerator.device)
    for index, batch in enumerate(batches):
        features = batch["input_features"]
        if config.specaugment.enabled:
            generator = torch.Generator().manual_seed(
                hash((config.seed, step, accelerator.process_index, index)) & 0x7FFF_FFFF)
            features = spec_augment(features, batch["lengths"], config.specaugment, generator)
        # Gradients are averaged across processes only on the last accumulated batch.
        last = index == len(batches) - 1
        labels = batch["labels"].to(accelerator.device)
        targets = labels != IGNORE_INDEX
        with (nullcontext() if last else accelerator.no_sync(model)), accelerator.autocast(), \
                targets_only(accelerator.unwrap_model(model), targets):
            output = model(input_features=features.to(accelerator.device), use_cache=False,
                           decoder_input_ids=batch["decoder_input_ids"].to(accelerator.device))
            summed = token_loss_sum(output.logits, labels[targets])
        accelerator.backward(summed * scale)
        total += summed.detach().float()
    return float(accelerator.reduce(total, reduction="sum").item()) / max(tokens, 1)
