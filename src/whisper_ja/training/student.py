"""A distillation student: the teacher with fewer decoder layers (distil-whisper's recipe).

distil-whisper and kotoba-whisper keep the whole encoder (frozen) and initialise a shallow
decoder from maximally spaced teacher decoder layers, always including the first and the last;
the embeddings, positional table and final layer norm are copied as they are. The decoder runs
once per generated token, the encoder once per clip, so cutting decoder layers cuts most of
the decoding time on short clips.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import numpy as np
import torch
from transformers import WhisperForConditionalGeneration

from whisper_ja.config import ConfigError
from whisper_ja.model.context import enable_dynamic_context, uses_dynamic_context

__all__ = ["freeze_encoder", "freeze_token_embeddings", "make_student", "spaced_layers"]

_DECODER_LAYER = re.compile(r"^model\.decoder\.layers\.(\d+)\.(.*)$")


def spaced_layers(teacher_layers: int, student_layers: int) -> tuple[int, ...]:
    """Indices of ``student_layers`` teacher decoder layers, spaced as far apart as possible.

    The first and the last layer are always kept (one layer: the last), as distil-whisper does;
    the others are spread evenly between them (rounded to the nearest layer).

    Raises:
        ConfigError: ``student_layers`` is not between 1 and ``teacher_layers``.
    """
    if not 1 <= student_layers <= teacher_layers:
        raise ConfigError(f"decoder_layers: must be between 1 and the teacher's "
                          f"{teacher_layers}, got {student_layers}")
    if student_layers == 1:
        return (teacher_layers - 1,)
    spaced = np.rint(np.linspace(0, teacher_layers - 1, student_layers)).astype(int)
    return tuple(int(i) for i in spaced)


def make_student(teacher: WhisperForConditionalGeneration,
                 decoder_layers: int) -> tuple[WhisperForConditionalGeneration, tuple[int, ...]]:
    """A copy of ``teacher`` whose decoder keeps only :func:`spaced_layers` of its layers.

    Every weight is copied exactly (the student's layer ``j`` is the teacher's layer
    ``layers[j]``); the config and generation config are the teacher's with
    ``decoder_layers`` changed, so the dynamic-context flag carries over.

    Args:
        teacher: A plain (adapter already merged) Whisper model.
        decoder_layers: Decoder layers the student keeps.

    Returns:
        The student (in eval mode, encoder frozen) and the teacher layers it was made from.
    """
    layers = spaced_layers(int(teacher.config.decoder_layers), decoder_layers)
    config = copy.deepcopy(teacher.config)
    config.decoder_layers = decoder_layers
    student: Any = WhisperForConditionalGeneration(config)
    student.to(teacher.dtype)
    source_of = {j: i for j, i in enumerate(layers)}
    state = teacher.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for name in student.state_dict():
        match = _DECODER_LAYER.match(name)
        source = (f"model.decoder.layers.{source_of[int(match.group(1))]}.{match.group(2)}"
                  if match else name)
        mapped[name] = state[source].detach().clone()
    student.load_state_dict(mapped, strict=True)
    student.generation_config = copy.deepcopy(teacher.generation_config)
    if uses_dynamic_context(teacher):
        enable_dynamic_context(student)
    freeze_encoder(student)
    return student.eval(), layers


def freeze_encoder(model: Any) -> int:
    """Stop gradients to the encoder; returns how many parameters stay trainable."""
    for param in model.get_encoder().parameters():
        param.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def freeze_token_embeddings(model: Any) -> int:
    """Stop gradients to the decoder's token embedding (tied to the output projection).

    On whisper-base it is 26.5 M of the 2-layer student's 33 M decoder parameters: its gradient
    (a vocabulary-sized matrix product per step) and its AdamW update cost more CPU time than
    the decoder layers themselves, and the student keeps the teacher's output space. Returns
    how many parameters stay trainable.
    """
    model.get_decoder().embed_tokens.weight.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
