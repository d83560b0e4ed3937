"""What transformers' ``generate`` is run with: the repetition stop, and quiet warnings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from transformers import LogitsProcessor
from transformers.utils import logging as hf_logging

from whisper_ja.inference.guards import tail_repeat

__all__ = ["RepetitionStop", "quiet_transformers"]


class RepetitionStop(LogitsProcessor):
    """Forces end-of-text on rows whose text tokens end in a back-to-back repeat.

    The repetition guard's stop (:func:`whisper_ja.inference.guards.tail_repeat` decides what
    a repeat is): a looping row ends at once instead of running to the token limit.

    Args:
        start_id: ``<|startoftranscript|>``; text tokens are the ones after its last copy.
        eot_id: ``<|endoftext|>``; ids at or above it (special tokens) are not text.
        max_ngram: Longest repeated unit looked for.
    """

    def __init__(self, start_id: int, eot_id: int, max_ngram: int = 32) -> None:
        self.start_id = start_id
        self.eot_id = eot_id
        self.max_ngram = max_ngram

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor
                 ) -> torch.FloatTensor:
        """End (force end-of-text on) every unfinished row whose text ends in a loop."""
        for row, ids in enumerate(input_ids.tolist()):
            if ids and ids[-1] == self.eot_id:
                continue  # finished (padded with end-of-text)
            start = len(ids) - ids[::-1].index(self.start_id) if self.start_id in ids else 0
            text = [t for t in ids[start:] if t < self.eot_id]
            if tail_repeat(text, self.max_ngram):
                scores[row] = float("-inf")
                scores[row, self.eot_id] = 0.0
        return scores


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' per-call generate warnings, which would repeat every batch.

    They concern max_length vs max_new_tokens and Whisper's own suppress-token arguments.
    """
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
