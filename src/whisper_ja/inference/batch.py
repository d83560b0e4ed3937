"""Decoding manifest utterances in batches of similar length."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from whisper_ja.audio.constants import HOP_LENGTH
from whisper_ja.audio.features import ContextPolicy, context_frames
from whisper_ja.audio.io import load_audio
from whisper_ja.data.manifest import Utterance
from whisper_ja.inference.decoding import decode_audio

__all__ = ["decode_utterances"]


def decode_utterances(model: Any, processor: Any, utts: Sequence[Utterance], options: Any,
                      context: str, *, progress: bool = True,
                      policy: Any = None) -> tuple[list[Any], float]:
    """Decode utterances in batches of similar length.

    Args:
        model: The Whisper (or peft) model.
        processor: Its ``WhisperProcessor``.
        utts: Utterances to decode (audio read with :func:`whisper_ja.audio.io.load_audio`).
        options: ``whisper_ja.inference.decoding.DecodeOptions``; ``context_frames`` is set per
            batch when
            ``context`` is ``dynamic``.
        context: ``dynamic`` (encoder input = the batch's longest clip, per the default
            ``ContextPolicy``) or ``full`` (30 s).
        progress: Show a progress bar over utterances.
        policy: ``ContextPolicy`` for dynamic context (default: the library default, which
            is also what ``train`` uses unless told otherwise).

    Returns:
        The ``DecodeResult`` of each utterance in input order, and the decoding wall time in
        seconds (audio loading excluded).
    """
    policy = policy or ContextPolicy()
    # Batching clips of similar length wastes the least padding (and, in dynamic context,
    # keeps the encoder input short).
    order = sorted(range(len(utts)), key=lambda i: utts[i].duration)
    results: list[Any] = [None] * len(utts)
    seconds = 0.0
    bar = tqdm(total=len(utts), desc="decoding", unit="utt", disable=not progress)
    for start in range(0, len(order), options.batch_size):
        batch = order[start:start + options.batch_size]
        audios = [load_audio(utts[i].audio) for i in batch]
        batch_options = options
        if context == "dynamic":
            longest = max(math.ceil(len(a) / HOP_LENGTH) for a in audios)
            batch_options = dataclasses.replace(
                options, context_frames=context_frames(longest, policy))
        began = time.perf_counter()
        with torch.inference_mode():
            decoded = decode_audio(model, processor, audios, batch_options, progress=False)
        seconds += time.perf_counter() - began
        for i, result in zip(batch, decoded, strict=True):
            results[i] = result
        bar.update(len(batch))
    bar.close()
    return results, seconds
