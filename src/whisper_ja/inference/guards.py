"""Decoding guards real transcribers use: a repetition stop and OpenAI's temperature fallback.

Fine-tuned Whisper models loop (issue 14: ``３０００００００…`` to the token limit). Two guards,
each a setting of :class:`GuardSettings`, on by default wherever whisper-ja decodes:

- **repetition guard**: while generating, a row whose newest tokens complete a back-to-back
  repeat (one token 8 times, two tokens 4 times, a longer unit 3 times: the thresholds of
  :func:`whisper_ja.inference.decoding.is_looping`) is ended at once, and the repeats after the
  first copy are cut, instead of running on to the token limit;
- **temperature fallback** (OpenAI's ``transcribe``): a row whose text compresses too well
  (gzip compression ratio above ``compression_ratio_threshold``: repetitive), whose average token
  log-probability is below ``logprob_threshold``, or that the repetition guard had to stop, is
  decoded again by sampling at the next temperature of ``temperatures``; the first attempt that
  passes is kept, else the attempt that did not loop with the best average log-probability.

:func:`guarded_generate` runs both around any generate function, so the decoding module keeps
a single call; the result says, per row, whether the first (greedy) attempt looped, which is
what reports count as loops before the guard.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from whisper_ja.inference.options import GuardSettings

__all__ = [
    "GuardSettings",
    "GuardedRows",
    "RepetitionStop",
    "compression_ratio",
    "guarded_generate",
    "stop_at_first_repeat",
    "tail_repeat",
    "trim_tail_repeat",
]

_MIN_REPEATS = {1: 8, 2: 4}
"""Back-to-back copies that make a loop, by unit length (longer units: 3)."""




def compression_ratio(text: str) -> float:
    """OpenAI's repetitiveness measure: UTF-8 bytes over their zlib-compressed size."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def tail_repeat(ids: Sequence[int], max_ngram: int = 32) -> int:
    """Length of the unit that the end of ``ids`` repeats back to back, or 0.

    A unit of n tokens counts once it occurs 8 (n = 1), 4 (n = 2) or 3 (n > 2) times in a row
    at the very end: only the tail is looked at, so the check is cheap at every step.
    """
    for n in range(1, max_ngram + 1):
        copies = _MIN_REPEATS.get(n, 3)
        if len(ids) < n * copies:
            break
        unit = list(ids[-n:])
        if all(list(ids[len(ids) - n * (k + 1):len(ids) - n * k]) == unit
               for k in range(1, copies)):
            return n
    return 0


def trim_tail_repeat(ids: Sequence[int], max_ngram: int = 32) -> tuple[list[int], bool]:
    """Cut a back-to-back repeat at the end of ``ids`` down to one copy of its unit."""
    ids = list(ids)
    n = tail_repeat(ids, max_ngram)
    if not n:
        return ids, False
    unit = ids[-n:]
    while len(ids) >= 2 * n and ids[-2 * n:-n] == unit:
        del ids[-n:]
    return ids, True


def stop_at_first_repeat(ids: Sequence[int], max_ngram: int = 32) -> list[int]:
    """``ids`` up to where their text first ends in a back-to-back repeat, as generated.

    What :class:`RepetitionStop` leaves, for a decoder that cannot be stopped mid-generation
    (CTranslate2 runs a row to its end): the shortest prefix that :func:`tail_repeat` flags,
    else ``ids`` unchanged. :func:`trim_tail_repeat` then cuts it to one copy, and the
    attempt counts as stopped, so the fallback decodes it again.
    """
    ids = list(ids)
    # No prefix under 8 tokens can be flagged (1 token 8 times, 2 tokens 4 times, 3 tokens
    # 3 times is 9): checking from there keeps this cheap.
    for end in range(8, len(ids) + 1):
        if tail_repeat(ids[:end], max_ngram):
            return ids[:end]
    return ids


class RepetitionStop(LogitsProcessor):
    """Forces end-of-text on rows whose text tokens end in a back-to-back repeat.

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


@dataclass(frozen=True)
class GuardedRows:
    """Text token ids per row after the guards.

    Attributes:
        rows: The kept attempt's text ids (a stopped repeat cut to one copy).
        looped_first: The greedy attempt looped (stopped by the guard, hit the token limit,
            or repetitive by compression ratio): the loops an unguarded decoder would emit.
        loop_kept: The kept attempt still had to be cut by the repetition guard or hit the
            token limit: loops left after the guards.
        temperature: Temperature of the kept attempt (0 = greedy).
    """

    rows: list[list[int]]
    looped_first: list[bool]
    loop_kept: list[bool]
    temperature: list[float]


@dataclass
class _Attempt:
    ids: list[int]
    stopped: bool
    hit_limit: bool
    ratio: float
    logprob: float
    temperature: float

    def passes(self, settings: GuardSettings) -> bool:
        # OpenAI's rule plus a stopped loop; reaching the token limit alone is no reason to
        # sample (a long transcript is not made shorter by temperature).
        return not (self.stopped or self.ratio > settings.compression_ratio_threshold
                    or self.logprob < settings.logprob_threshold)


GenerateFn = Callable[[list[int], dict[str, Any]], list[list[int]]]
"""``(rows of the batch, extra generate kwargs) -> text ids per row`` (no specials)."""
ScoreFn = Callable[[list[int], list[list[int]]], list[float]]
"""``(rows, their text ids) -> average log-probability per row`` (end-of-text included)."""
DetokenizeFn = Callable[[list[int]], str]


def guarded_generate(generate: GenerateFn, score: ScoreFn, detokenize: DetokenizeFn, *,
                     batch: int, settings: GuardSettings, max_new_tokens: int,
                     start_id: int, eot_id: int) -> GuardedRows:
    """Generate a batch with the repetition guard and the temperature fallback.

    Args:
        generate: Runs the model's generate on some rows of the batch with extra kwargs
            (``logits_processor``, ``temperature``, ``do_sample``, ``num_beams``).
        score: Average log-probability of given text ids (teacher-forced).
        detokenize: Text ids to text (for the compression ratio).
        batch: Rows in the batch.
        settings: The guards.
        max_new_tokens: The token limit (reaching it counts as a loop).
        start_id: ``<|startoftranscript|>`` id (from the tokenizer).
        eot_id: ``<|endoftext|>`` id (from the tokenizer).
    """
    processors = LogitsProcessorList(
        [RepetitionStop(start_id, eot_id, settings.max_ngram)] if settings.repetition else [])

    def attempt(rows: list[int], temperature: float) -> list[_Attempt]:
        extra: dict[str, Any] = {"logits_processor": processors}
        if temperature > 0:
            extra.update(do_sample=True, temperature=temperature, num_beams=1)
        raw = generate(rows, extra)
        # Cut where the repetition stop ends a row; a generator that cannot be stopped
        # mid-generation (CTranslate2) ran on past that point, so its rows are cut there too.
        cut = [trim_tail_repeat(stop_at_first_repeat(ids, settings.max_ngram),
                                settings.max_ngram) if settings.repetition else (ids, False)
               for ids in raw]
        logprobs = score(rows, [ids for ids, _ in cut]) if settings.fallback else [0.0] * len(rows)
        return [_Attempt(ids, stopped, len(full) >= max_new_tokens,
                         compression_ratio(detokenize(ids)), lp, temperature)
                for (ids, stopped), full, lp in zip(cut, raw, logprobs, strict=True)]

    first = attempt(list(range(batch)), 0.0)
    tries: list[list[_Attempt]] = [[a] for a in first]
    pending = [i for i, a in enumerate(first) if not a.passes(settings)]
    if settings.fallback:
        with torch.random.fork_rng():
            torch.manual_seed(settings.seed)
            for temperature in settings.temperatures:
                if not pending:
                    break
                for i, a in zip(pending, attempt(pending, temperature), strict=True):
                    tries[i].append(a)
                pending = [i for i in pending if not tries[i][-1].passes(settings)]
    kept = [_choose(t, settings) for t in tries]
    return GuardedRows(
        rows=[a.ids for a in kept],
        looped_first=[a.stopped or a.hit_limit
                      or a.ratio > settings.compression_ratio_threshold for a in first],
        loop_kept=[a.stopped or a.hit_limit for a in kept],
        temperature=[a.temperature for a in kept])


def _choose(tries: list[_Attempt], settings: GuardSettings) -> _Attempt:
    """The first attempt that passes, else the best non-looping one by log-probability."""
    for a in tries:
        if a.passes(settings):
            return a
    return max(tries, key=lambda a: (not (a.stopped or a.hit_limit), a.logprob))
