"""The training loop of ``whisper-ja distill``: schedule, precision, checkpoints, resume.

Each step takes one cached batch (its frozen encoder output and the kept pseudo-labels), runs
the teacher's decoder for the soft targets and the student's decoder forward and backward:
the encoder never runs here, so a step costs decoder work only. The batch order is a pure
function of the seed and the epoch, so the step counter alone says where a resumed run goes on.

A checkpoint (``OUT/checkpoint.pt``: the student's trainable weights, optimizer, schedule, step
and log) is written atomically every ``checkpoint_every`` steps and at the end by
:mod:`whisper_ja.training.checkpoint` (as ``train``'s: synced, renamed, a full disk one line);
a run started again with the same settings continues from it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import get_scheduler
from transformers.modeling_outputs import BaseModelOutput

from whisper_ja.config import config_to_dict
from whisper_ja.training.checkpoint import load_resumable, save_state_file
from whisper_ja.training.distill_data import Batch
from whisper_ja.training.distill_settings import DistillConfig, DistillLoss

__all__ = ["CHECKPOINT", "IGNORE", "LossParts", "batch_order", "distill_loss",
           "label_tensors", "train_student"]

IGNORE = -100
"""Target id that the losses skip (the forced prefix and padding)."""

CHECKPOINT = "checkpoint.pt"
"""File name of the resumable checkpoint in the output folder."""


@dataclass(frozen=True)
class LossParts:
    """The loss and its two terms (each averaged over the target tokens)."""

    total: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor


DEFAULT_LOSS = DistillLoss()
"""distil-whisper's loss weights (frozen: safe as a shared default)."""


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                 targets: torch.Tensor, weights: DistillLoss = DEFAULT_LOSS) -> LossParts:
    """``ce_weight * CE(student, targets) + kl_weight * T^2 * KL(teacher_T || student_T)``.

    Args:
        student_logits: ``(B, L, V)``.
        teacher_logits: ``(B, L, V)``, same positions (no gradient needed).
        targets: ``(B, L)`` token ids; :data:`IGNORE` positions count in neither term.
        weights: The weights and temperature.
    """
    mask = targets != IGNORE
    student = student_logits[mask].float()  # float32 softmax even under bf16 autocast
    teacher = teacher_logits[mask].float().detach()
    ce = F.cross_entropy(student, targets[mask])
    t = weights.temperature
    kl = F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1),
                  reduction="batchmean", log_target=True) * t * t
    return LossParts(total=weights.ce_weight * ce + weights.kl_weight * kl, ce=ce, kl=kl)


def label_tensors(prefix: tuple[int, ...], eot: int, labels: list[tuple[int, ...]],
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs (prefix + text) and targets (text + eot; the forced prefix ignored)."""
    width = len(prefix) + max(len(ids) for ids in labels)
    inputs = torch.full((len(labels), width), eot, dtype=torch.long)
    targets = torch.full((len(labels), width), IGNORE, dtype=torch.long)
    for r, ids in enumerate(labels):
        row = [*prefix, *ids]
        inputs[r, :len(row)] = torch.tensor(row)
        targets[r, len(prefix) - 1:len(row)] = torch.tensor([*ids, eot])
    return inputs, targets


def batch_order(batches: int, steps: int, seed: int, start: int = 0) -> Iterator[int]:
    """Batch index of each step from ``start`` on: every epoch a seeded shuffle of all batches.

    Epoch ``e`` is ``random.Random(seed + e).sample(range(batches), batches)``, so the order of
    step ``s`` does not depend on where a run was interrupted.
    """
    for step in range(start, steps):
        epoch, position = divmod(step, batches)
        if position == 0 or step == start:
            order = random.Random(seed + epoch).sample(range(batches), batches)
        yield order[position]


def _settings_key(config: DistillConfig) -> dict[str, Any]:
    """The settings a checkpoint must share with the run that resumes it."""
    ignored = {"out", "progress", "resume", "checkpoint_every", "cache"}
    return {k: v for k, v in config_to_dict(config).items() if k not in ignored}


def _load_checkpoint(path: Path, config: DistillConfig) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None; refuses one made with other settings."""
    return load_resumable(path, _settings_key(config), config.resume)


def _save_checkpoint(path: Path, student: Any, optimizer: Any, scheduler: Any, step: int,
                     history: list[dict[str, float]], config: DistillConfig) -> None:
    """Write the checkpoint atomically (training/checkpoint.py, as ``train``'s)."""
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    save_state_file({"step": step, "history": history, "settings": _settings_key(config),
                     "student": {n: t for n, t in student.state_dict().items()
                                 if n in trainable},
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                    path)


def _autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CPU when asked (about 4x the fp32 matrix throughput on AVX-512 bf16)."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_student(student: Any, teacher: Any, batches: list[Batch], keep: set[int],
                  prefix: tuple[int, ...], eot: int, config: DistillConfig, precision: str,
                  ) -> list[dict[str, float]]:
    """Train the student's decoder on the kept pseudo-labels; one log record per step.

    Args:
        student: The student (encoder frozen).
        teacher: The teacher (soft targets).
        batches: The cached batches (:func:`whisper_ja.training.distill_data.encode_and_label`).
        keep: Utterance indices whose pseudo-labels survived the filter.
        prefix: The forced decoder prefix (start, ja, transcribe, no timestamps).
        eot: The end-of-text id.
        config: The :class:`whisper_ja.training.distill_settings.DistillConfig`.
        precision: ``bf16`` or ``no`` (from :func:`whisper_ja.training.settings.resolve_precision`).

    Returns:
        The log of every step, those of earlier attempts included when resumed.
    """
    usable = [b for b in batches if any(i in keep for i in b.rows)]
    total = config.steps or config.epochs * len(usable)
    params = [p for p in student.parameters() if p.requires_grad]
    # fused: one kernel per parameter group instead of a dozen passes over each tensor on CPU
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                                  fused=True)
    scheduler = get_scheduler(config.schedule, optimizer,
                              num_warmup_steps=round(config.warmup * total),
                              num_training_steps=total)
    path = config.out / CHECKPOINT
    state = _load_checkpoint(path, config)
    history: list[dict[str, float]] = []
    if state is not None:
        student.load_state_dict(state["student"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
    done = len(history)
    student.train()
    bar = tqdm(total=total, initial=done, desc="distill", disable=not config.progress)
    for step, index in enumerate(batch_order(len(usable), total, config.seed, done), done + 1):
        batch = usable[index]
        picked = [j for j, i in enumerate(batch.rows) if i in keep]
        inputs, targets = label_tensors(prefix, eot, [batch.labels[j] for j in picked])
        encoded = BaseModelOutput(last_hidden_state=batch.hidden[picked])
        with _autocast(precision):
            with torch.no_grad():
                soft = teacher(encoder_outputs=encoded, decoder_input_ids=inputs).logits
            logits = student(encoder_outputs=encoded, decoder_input_ids=inputs).logits
        parts = distill_loss(logits, soft, targets, config.loss)
        optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        history.append({"step": step, "epoch": (step - 1) // len(usable) + 1,
                        "lr": scheduler.get_last_lr()[0], "loss": float(parts.total.detach()),
                        "ce": float(parts.ce.detach()), "kl": float(parts.kl.detach())})
        bar.update()
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", refresh=False)
        if step % config.checkpoint_every == 0 or step == total:
            _save_checkpoint(path, student, optimizer, scheduler, step, history, config)
    bar.close()
    return history
