"""Decoding one batch of windows with the guards and the silence rule, on any backend.

Fine-tuned Whisper models loop (issue 14: ``３０００００００…`` to the token limit). Every
window whisper-ja decodes, clip or long-form, on transformers or CTranslate2, goes through
:func:`decode_windows`, so every ``guards.*`` setting means the same everywhere:

- **repetition guard** (``guards.repetition``): a row whose text ends in a back-to-back repeat
  (one token 8 times, two tokens 4 times, a longer unit 3 times) is cut after the first copy;
  the backend may stop generating there (transformers does), or run on (CTranslate2) and be
  cut here;
- **temperature fallback** (``guards.fallback``, OpenAI's ``transcribe``): a row whose text
  compresses too well (``compression_ratio_threshold``), whose average log-probability is under
  ``logprob_threshold``, or that the repetition guard cut, is sampled again at each of
  ``temperatures`` in turn; the first attempt that passes is kept, else the one that did not
  loop with the best log-probability. Above temperature 0.5 the previous-text prompt is
  dropped (OpenAI's ``prompt_reset_on_temperature``);
- **silence rule** (``no_speech_threshold``): a window whose greedy no-speech probability is
  above the threshold and whose kept text is unconfident is silent: it is not sampled again
  (OpenAI's rule) and its text is dropped by the caller, which counts it;
- **splittable rows**: a window whose greedy reading loops and that the caller can decode
  again in smaller pieces (long audio cuts it at a pause) is not sampled: it comes back
  flagged ``looped`` and the caller re-cuts it.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from whisper_ja.inference.backend import Backend, Encoded, GenerateRequest, WindowResult
from whisper_ja.inference.options import DecodingOptions, GuardSettings

__all__ = ["compression_ratio", "cut_repeat", "decode_windows", "is_looping",
           "tail_repeat", "trim_tail_repeat"]

_MIN_REPEATS = {1: 8, 2: 4}
"""Back-to-back copies that make a loop, by unit length (longer units: 3)."""

PROMPT_RESET_TEMPERATURE = 0.5
"""Above this sampling temperature the previous text is not given (OpenAI's default)."""


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


def cut_repeat(ids: Sequence[int], eot: int, max_ngram: int = 32) -> tuple[list[int], bool]:
    """``ids`` cut after the first copy of the first back-to-back repeat of their text.

    Timestamp ids (at or above ``eot``) are not text: the repeat is looked for in the text
    alone and everything generated after its first copy goes, timestamps included.

    Returns:
        The kept ids and whether a repeat was cut.
    """
    ids = list(ids)
    text: list[int] = []
    # No prefix under 8 text tokens can be flagged (1 token 8 times, 2 tokens 4 times, 3
    # tokens 3 times is 9): checking from there keeps this cheap.
    for token in ids:
        if token >= eot:
            continue
        text.append(token)
        if len(text) >= 8 and tail_repeat(text, max_ngram):
            kept, _ = trim_tail_repeat(text, max_ngram)
            return _through_text_token(ids, eot, len(kept)), True
    return ids, False


def _through_text_token(ids: list[int], eot: int, count: int) -> list[int]:
    """``ids`` up to and including their ``count``-th text token."""
    seen = 0
    for index, token in enumerate(ids):
        if token < eot:
            seen += 1
            if seen == count:
                return ids[:index + 1]
    return ids


def _tandem_repeat(ids: Sequence[int], n: int, min_repeats: int) -> bool:
    """Whether some n-gram occurs ``min_repeats`` times back to back."""
    run = 0
    for i in range(n, len(ids)):
        run = run + 1 if ids[i] == ids[i - n] else 0
        if run >= n * (min_repeats - 1):
            return True
    return False


def _max_disjoint_count(ids: Sequence[int], n: int) -> int:
    """Occurrences of the most frequent n-gram, counting only non-overlapping ones."""
    counts: Counter[tuple[int, ...]] = Counter()
    next_free: dict[tuple[int, ...], int] = {}
    for i in range(len(ids) - n + 1):
        gram = tuple(ids[i:i + n])
        if i >= next_free.get(gram, 0):
            counts[gram] += 1
            next_free[gram] = i + n
    return max(counts.values(), default=0)


def is_looping(token_ids: Sequence[int], max_ngram: int = 32, *, eot: int | None = None
               ) -> bool:
    """Detect Whisper's repetition hallucinations in a token sequence.

    Flags a sequence when one n-gram (n <= ``max_ngram``) repeats back to back (one token 8
    times, two tokens 4 times, longer ones 3 times), or when copies of a single 3- to 8-gram,
    occurring at least 4 times anywhere, make up half the sequence. Thresholds sit above what
    real Japanese repeats: laughter "ははは" is one to three tokens, reduplications come in
    twos, and a phrase recurring in long speech covers little of it.

    Args:
        token_ids: Token ids.
        max_ngram: Longest repeated unit looked for back to back.
        eot: ``<|endoftext|>``: ids from it on (specials, timestamps) are ignored. None = all
            ids are text.
    """
    ids = [t for t in token_ids if eot is None or t < eot]
    if len(ids) < 6:
        return False
    for n in range(1, min(max_ngram, len(ids) // 2) + 1):
        if _tandem_repeat(ids, n, _MIN_REPEATS.get(n, 3)):
            return True
    for n in range(3, 9):
        count = _max_disjoint_count(ids, n)
        if count >= 4 and count * n >= len(ids) / 2:
            return True
    return False


@dataclass(frozen=True)
class _Attempt:
    ids: tuple[int, ...]
    stopped: bool
    hit_limit: bool
    ratio: float
    avg_logprob: float
    no_speech_prob: float
    temperature: float

    def passes(self, settings: GuardSettings) -> bool:
        # OpenAI's rule plus a stopped loop; reaching the token limit alone is no reason to
        # sample (a long transcript is not made shorter by temperature).
        return not (self.stopped or self.ratio > settings.compression_ratio_threshold
                    or self.avg_logprob < settings.logprob_threshold)

    @property
    def loops(self) -> bool:
        return self.stopped or self.hit_limit


def _attempts(backend: Backend, encoded: Encoded, rows: Sequence[int],
              request: GenerateRequest, settings: GuardSettings) -> list[_Attempt]:
    eot = backend.vocabulary.specials.eot
    out = []
    for generated in backend.generate(encoded, rows, request):
        ids, stopped = (cut_repeat(generated.ids, eot, settings.max_ngram)
                        if settings.repetition else (list(generated.ids), False))
        text = backend.decode_text([t for t in ids if t < eot])
        out.append(_Attempt(tuple(ids), stopped, generated.hit_limit, compression_ratio(text),
                            generated.avg_logprob, generated.no_speech_prob,
                            request.temperature))
    return out


def _silent(attempt: _Attempt, options: DecodingOptions) -> bool:
    threshold = options.no_speech_threshold
    return (threshold is not None and attempt.no_speech_prob > threshold
            and attempt.avg_logprob < options.guards.logprob_threshold)


def _loops(attempt: _Attempt, settings: GuardSettings) -> bool:
    """The attempt loops: cut by the guard, at the token limit, or repetitive text."""
    return attempt.loops or attempt.ratio > settings.compression_ratio_threshold


def _choose(tries: list[_Attempt], settings: GuardSettings) -> _Attempt:
    """The first attempt that passes, else the best of the others by log-probability.

    Those that do not loop and reach ``logprob_threshold`` come first, then loops, then the
    rest.

    A sample under the threshold is rarely a transcript: a window whose greedy reading loops
    at every low temperature gave at 1.0 a reading of average log-probability -2.16 (short2
    set of ``benchmarks/heldout_longform.py``). A loop, cut where it began, is kept over such
    a sample and flagged: long-form decoding then decodes the window again in VAD pieces.
    """
    for attempt in tries:
        if attempt.passes(settings):
            return attempt
    readable = [a for a in tries if not a.loops and a.avg_logprob >= settings.logprob_threshold]
    looping = [a for a in tries if a.loops]
    return max(readable or looping or tries, key=lambda a: a.avg_logprob)


def decode_windows(backend: Backend, encoded: Encoded, rows: Sequence[int],
                   options: DecodingOptions, *, timestamps: bool,
                   prompt: tuple[int, ...] = (),
                   splittable: Callable[[int], bool] | None = None) -> list[WindowResult]:
    """Decode ``rows`` of an encoded batch with the guards and the silence rule.

    Args:
        backend: The model.
        encoded: The batch's encoder output.
        rows: Rows of ``encoded`` to decode.
        options: Language, beams, token limit, guards and silence threshold.
        timestamps: Generate Whisper's timestamp tokens.
        prompt: Previous-text ids (without ``<|startofprev|>``), shared by the rows.
        splittable: Asked only for a row whose greedy reading loops (with the row's index in
            ``rows``): whether the caller decodes its speech again in smaller pieces; such a
            row is not sampled again (None: no row is). Each sampled attempt at a loop runs
            to the token limit on CTranslate2, which cannot stop at a repeat (short2 set of
            ``benchmarks/heldout_longform.py``: one window's five attempts, all looping but
            the last, unreadable one, took 8 s of 20 s).

    Returns:
        One result per row, in order.
    """
    settings = options.guards
    request = GenerateRequest(
        language=options.language, timestamps=timestamps, prompt=prompt, beams=options.beams,
        max_new_tokens=options.max_new_tokens, seed=settings.seed,
        temperature=options.temperature,
        stop_repeats=settings.max_ngram if settings.repetition else 0)
    first = _attempts(backend, encoded, rows, request, settings)
    tries = {row: [attempt] for row, attempt in zip(rows, first, strict=True)}
    split = {row for index, (row, attempt) in enumerate(zip(rows, first, strict=True))
             if splittable is not None and _loops(attempt, settings) and splittable(index)}
    pending = [row for row, attempt in zip(rows, first, strict=True)
               if not attempt.passes(settings) and not _silent(attempt, options)
               and row not in split]
    higher = [t for t in settings.temperatures if t > options.temperature]
    for temperature in higher if settings.fallback else ():
        if not pending:
            break
        sampled = replace(request, temperature=temperature,
                          prompt=prompt if temperature <= PROMPT_RESET_TEMPERATURE else ())
        for row, attempt in zip(pending, _attempts(backend, encoded, pending, sampled,
                                                   settings), strict=True):
            tries[row].append(attempt)
        pending = [row for row in pending if not tries[row][-1].passes(settings)]
    eot = backend.vocabulary.specials.eot
    results = []
    for row, greedy in zip(rows, first, strict=True):
        kept = _choose(tries[row], settings)
        looped = row in split or kept.loops or is_looping(kept.ids, settings.max_ngram, eot=eot)
        results.append(WindowResult(
            ids=kept.ids, avg_logprob=kept.avg_logprob, no_speech_prob=greedy.no_speech_prob,
            temperature=kept.temperature, looped=looped,
            looped_first=_loops(greedy, settings),
            silent=_silent(replace(kept, no_speech_prob=greedy.no_speech_prob), options)))
    return results
