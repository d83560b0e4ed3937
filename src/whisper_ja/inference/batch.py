"""Decoding manifest utterances in batches of similar length."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from whisper_ja.audio.features import ContextPolicy, batch_context_frames
from whisper_ja.audio.io import AudioError, load_audio
from whisper_ja.data.manifest import Utterance
from whisper_ja.inference.decoding import DecodeOptions, DecodeResult, decode_audio

__all__ = ["BatchDecoding", "decode_utterances", "readable_audio"]


@dataclass(frozen=True)
class BatchDecoding:
    """What :func:`decode_utterances` returns.

    Attributes:
        results: The ``DecodeResult`` of each utterance in input order; ``None`` where its
            audio could not be read.
        seconds: Decoding wall time (audio loading excluded).
        failed: ``{utterance id: one-line reason}`` of the utterances left out (bad audio).
    """

    results: list[DecodeResult | None]
    seconds: float
    failed: dict[str, str]

    def decoded(self) -> list[DecodeResult]:
        """The results of the utterances that were decoded (input order, failures left out)."""
        return [r for r in self.results if r is not None]


def readable_audio(utts: Sequence[Utterance], batch: list[int], failed: dict[str, str]
                   ) -> tuple[list[int], list[np.ndarray]]:
    """The batch's utterances whose audio loads, and their audio; the others go to ``failed``."""
    kept, audios = [], []
    for i in batch:
        try:
            audios.append(load_audio(utts[i].audio))
            kept.append(i)
        except AudioError as err:
            failed[utts[i].id] = str(err)
    return kept, audios


def decode_utterances(model: Any, processor: Any, utts: Sequence[Utterance],
                      options: DecodeOptions, context: str, *, progress: bool = True,
                      policy: ContextPolicy | None = None) -> BatchDecoding:
    """Decode utterances in batches of similar length; unreadable audio is counted, not fatal.

    Args:
        model: The Whisper (or peft) model.
        processor: Its ``WhisperProcessor``.
        utts: Utterances to decode (audio read with :func:`whisper_ja.audio.io.load_audio`).
        options: Decoding options; ``context_frames`` is set per batch when ``context`` is
            ``dynamic``.
        context: ``dynamic`` (encoder input = the batch's longest clip, per ``policy``) or
            ``full`` (30 s).
        progress: Show a progress bar over utterances.
        policy: ``ContextPolicy`` for dynamic context (default: the library default, which
            is also what ``train`` uses unless told otherwise).

    Returns:
        The results, the decoding time and the utterances whose audio failed to load.
    """
    policy = policy or ContextPolicy()
    # Batching clips of similar length wastes the least padding (and, in dynamic context,
    # keeps the encoder input short).
    order = sorted(range(len(utts)), key=lambda i: utts[i].duration)
    results: list[DecodeResult | None] = [None] * len(utts)
    failed: dict[str, str] = {}
    seconds = 0.0
    bar = tqdm(total=len(utts), desc="decoding", unit="utt", disable=not progress)
    for start in range(0, len(order), options.batch_size):
        batch, audios = readable_audio(utts, order[start:start + options.batch_size], failed)
        bar.update(options.batch_size if start + options.batch_size <= len(order)
                   else len(order) - start)
        if not batch:
            continue
        batch_options = options
        if context == "dynamic":
            batch_options = dataclasses.replace(
                options, context_frames=batch_context_frames(audios, policy))
        began = time.perf_counter()
        with torch.inference_mode():
            decoded = decode_audio(model, processor, audios, batch_options, progress=False)
        seconds += time.perf_counter() - began
        for i, result in zip(batch, decoded, strict=True):
            results[i] = result
    bar.close()
    return BatchDecoding(results=results, seconds=seconds, failed=failed)
