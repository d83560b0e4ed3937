"""The two long-form modes over a :class:`~.decoder.WindowDecoder` (see the package's text).

- ``sequential``: a 30 s window decoded after the text decoded so far, the next starting at
  the last timestamp the model wrote;
- ``batched``: VAD's speech stretches joined into windows of at most 30 s, decoded together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE, SAMPLES_PER_CHUNK
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.audio.io import is_silent
from whisper_ja.inference.backend import Backend, Encoded, WindowResult
from whisper_ja.inference.clauses import join_windows
from whisper_ja.inference.guards import decode_windows
from whisper_ja.inference.longform.decoder import (
    MIN_WINDOW_SECONDS,
    WindowDecoder,
    prompt_room,
    recover,
)
from whisper_ja.inference.options import DecodingOptions
from whisper_ja.inference.punctuation import carry_sentence_ends
from whisper_ja.inference.timestamps import Segment, SpeechSpan, WindowParse
from whisper_ja.inference.vad import batch_windows, merge_spans
from whisper_ja.inference.windows import (
    LongformStats,
    Window,
    seek_after,
)

__all__ = ["long_audio_segments"]

PUNCTUATE_PROMPT_TOKENS = 64
"""Previous text of a window decoded again for punctuation (the full 223: dev 12% slower)."""


def _sequential(decoder: WindowDecoder, prompt: list[int], cancelled: Callable[[], bool],
                ) -> Iterator[Segment]:
    """OpenAI's loop over each speech stretch: decode 30 s, seek by the last timestamp."""
    options, stats = decoder.options, decoder.stats
    room = (prompt_room(decoder.backend, options)
            if options.longform.condition_on_previous_text else 0)
    stretches = (merge_spans(decoder.spans, options.vad.max_gap_s, float("inf"))
                 if options.longform.vad else decoder.spans)
    for stretch in stretches:
        clip_start, clip = round(stretch.start * SAMPLE_RATE), stretch.samples(decoder.audio)
        seek = 0
        while clip.size - seek >= MIN_WINDOW_SECONDS * SAMPLE_RATE and not cancelled():
            size = min(SAMPLES_PER_CHUNK, clip.size - seek)
            window = decoder.window(SpeechSpan((clip_start + seek) / SAMPLE_RATE,
                                               (clip_start + seek + size) / SAMPLE_RATE))
            if is_silent(window.audio):
                seek += size
                continue
            used = tuple(prompt[len(prompt) - room:]) if room else ()
            stats.windows += 1
            encoded, results, parses = decoder.decode([window], used)
            if decoder.dropped(results[0], parses[0]) and used and options.longform.retry_dropped:
                stats.retried += 1
                encoded, results, parses = decoder.decode([window])
                stats.recovered += not decoder.dropped(results[0], parses[0])
            result, parse = results[0], parses[0]
            if parse is None or decoder.dropped(result, parse):
                found = recover(decoder, window, result, encoded, parse, bool(used))
                yield from found
                prompt = [*prompt, *(t for s in found for t in s.token_ids)]
                seek += size
                continue
            found = decoder.segments(encoded, [0], [window], [result], [parse])[0]
            stats.looped += result.looped
            advance = seek_after(window, found, parse.seek) if decoder.retries else parse.seek
            found = decoder.fill(window, found, before=window.span.start + advance)
            yield from found
            prompt = [] if result.looped else [*prompt, *(t for s in found for t in s.token_ids)]
            seek += max(1, round(advance * SAMPLE_RATE))


def _batched(decoder: WindowDecoder, prompt: tuple[int, ...], cancelled: Callable[[], bool],
             ) -> Iterator[Segment]:
    """VAD windows of at most 30 s, decoded ``batch_size`` at a time, with the initial prompt.

    A window written without punctuation is decoded again after a punctuated neighbour's text
    (:func:`_punctuate`); a sentence a window's end cut is joined again (``join_windows``).
    """
    gap = decoder.options.longform.pauses.merge_gap_s
    windows = _batched_windows(decoder, prompt, cancelled)
    if gap > 0:
        yield from join_windows(windows, gap)
    else:
        yield from (segment for window in windows for segment in window)


def _batched_windows(decoder: WindowDecoder, prompt: tuple[int, ...],
                     cancelled: Callable[[], bool]) -> Iterator[list[Segment]]:
    """Each batched window's segments, in time order."""
    options, stats = decoder.options, decoder.stats
    spans = batch_windows(decoder.audio, options.vad, options.longform.vad)
    windows = [decoder.window(span) for span in spans]
    for first in range(0, len(windows), options.batch_size):
        if cancelled():
            return
        batch = windows[first:first + options.batch_size]
        stats.windows += len(batch)
        encoded, results, parses = decoder.decode(batch, prompt)
        _punctuate(decoder, batch, encoded, results, parses, prompt)
        good = [i for i in range(len(batch)) if not decoder.dropped(results[i], parses[i])]
        found = dict(zip(good, decoder.segments(
            encoded, good, [batch[i] for i in good], [results[i] for i in good],
            [p for i in good if (p := parses[i]) is not None]), strict=True))
        for i, window in enumerate(batch):
            if i in found:
                stats.looped += results[i].looped
                yield decoder.fill(window, found[i])
            else:
                yield recover(decoder, window, results[i], encoded, parses[i], False, i)


def _punctuate(decoder: WindowDecoder, batch: Sequence[Window], encoded: Encoded,
               results: list[WindowResult], parses: list[WindowParse | None],
               prompt: tuple[int, ...]) -> None:
    """Windows written without punctuation, decoded again after a punctuated neighbour's text.

    Batched windows get no previous text, and whisper-base writes some of them with no
    punctuation at all, its segments then ending at clauses as often as at sentences (dev set
    of ``benchmarks/heldout_longform.py``: P(。) 0.011-0.42 at sentence ends, 0.000-0.011 at
    clause ends). After punctuated text, as in sequential decoding, Whisper punctuates (dev F1
    0.855 -> 0.885, CER unchanged). The encoder output is reused; the new reading replaces the
    first when it is punctuated, usable and well timed, or lends it its sentence ends
    (:func:`~whisper_ja.inference.punctuation.carry_sentence_ends`).
    """
    if not decoder.options.longform.condition_on_previous_text:
        return
    marked = [decoder.punctuated(p) for p in parses]
    end = decoder.backend.vocabulary.sentence_end
    room = min(PUNCTUATE_PROMPT_TOKENS, prompt_room(decoder.backend, decoder.options))
    for i in range(len(batch)):
        if marked[i] or decoder.dropped(results[i], parses[i]):
            continue
        order = [*range(i - 1, -1, -1), *range(i + 1, len(batch))]  # the nearest before first
        source = next((parses[j] for j in order if marked[j]), None)
        if source is None or room == 0:
            return
        before = [t for _, _, ids in source.segments for t in ids]
        [again] = decode_windows(decoder.backend, encoded, [i], decoder.options,
                                 timestamps=True, prompt=(*prompt, *before)[-room:])
        parse, first = decoder.parse(batch[i], again), parses[i]
        if parse is None or not decoder.punctuated(parse) or decoder.dropped(again, parse):
            continue
        if parse.well_formed or first is None or not first.well_formed:
            results[i], parses[i] = again, parse
        elif end is not None and (carried := carry_sentence_ends(
                first, parse, decoder.text.decode, end)) is not None:
            parses[i] = carried  # the second reading lost its timestamps: the first's kept
        else:
            continue
        decoder.stats.punctuated += 1


def long_audio_segments(backend: Backend, audio: np.ndarray, options: DecodingOptions, *,
                        prompt: Sequence[int] = (), stats: LongformStats | None = None,
                        cancelled: Callable[[], bool] | None = None,
                        piece_policy: ContextPolicy | None = None) -> Iterator[Segment]:
    """Timed segments of a 16 kHz mono recording of any length, yielded as they are decoded.

    Args:
        backend: The model.
        audio: ``(samples,)`` float32 at 16 kHz.
        options: Every decoding setting (mode, VAD, guards, words, pauses...).
        prompt: Initial previous-text ids (without ``<|startofprev|>``).
        stats: Filled with what happened to the windows (lost speech included).
        cancelled: Asked before each window (batch): True stops decoding.
        piece_policy: The encoder's context for speech decoded again in pieces (skipped
            sentences, a dropped window's stretches); None: the backend's own, as windows.

    Yields:
        Segments in time order, at file times (seconds).
    """
    decoder = WindowDecoder(backend, np.asarray(audio, dtype=np.float32), options,
                       stats if stats is not None else LongformStats(),
                       piece_policy=piece_policy)
    stop = cancelled or _never
    if options.longform.mode == "batched":
        yield from _batched(decoder, tuple(prompt), stop)
    else:
        yield from _sequential(decoder, list(prompt), stop)


def _never() -> bool:
    return False
