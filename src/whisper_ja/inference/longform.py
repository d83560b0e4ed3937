"""Long-form decoding on any backend: timed segments of a whole recording, lazily.

Written once against :class:`~whisper_ja.inference.backend.Backend`; both modes run after
Silero VAD (:mod:`whisper_ja.inference.vad`) has found the speech:

- ``sequential`` (OpenAI's and faster-whisper's algorithm): a 30 s window is decoded with
  timestamps, conditioned on the text decoded so far; the next window starts at the last
  timestamp the model wrote, so no sentence is cut at a window border.
- ``batched``: speech stretches joined into windows of at most 30 s, decoded together without
  previous text.

In both, each window's segments are cut at the sentence pauses Whisper wrote through and
snapped onto speech (:mod:`whisper_ja.inference.pause_split`).

**No speech is lost silently.** A window whose text is dropped (the silence rule, a loop the
guards could not replace, no usable timestamps) although VAD heard speech in it is decoded
again: first without the previous text, then cut at VAD's own stretches, each decoded alone.
What is still lost is counted in :class:`LongformStats` (windows, seconds of VAD speech),
which ``transcribe``'s JSON and ``evaluate``'s report show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE, SAMPLES_PER_CHUNK
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.audio.io import is_silent
from whisper_ja.inference.backend import Backend, Encoded, WindowResult
from whisper_ja.inference.clauses import join_windows, merge_clauses
from whisper_ja.inference.guards import decode_windows
from whisper_ja.inference.options import DecodingOptions
from whisper_ja.inference.pause_split import cut_at_pauses
from whisper_ja.inference.punctuation import carry_sentence_ends
from whisper_ja.inference.timestamps import Segment, SpeechSpan, WindowParse, parse_window
from whisper_ja.inference.vad import batch_windows, merge_spans, pause_stretches, speech_spans
from whisper_ja.inference.windows import (
    LongformStats,
    TextView,
    Window,
    seek_after,
    split_at_pause,
    uncovered,
    window_segments,
    window_words,
)
from whisper_ja.text.sentences import has_punctuation

__all__ = ["LongformStats", "long_audio_segments", "short_files_segments"]

MIN_WINDOW_SECONDS = 0.3
"""A remainder shorter than this after seeking is not decoded (too short to hold a word)."""

SHORT_FILE_EDGE_S = 0.2
"""Audio kept each side of a short file's VAD windows, beyond Silero's own 200 ms padding.

Silero's onset comes late on a soft first consonant, and a short file's first word has no
context: 40 SYNTHETIC files (``benchmarks/transcribe_files.py``) CER 17.59% -> 16.53% ("彼女は"
had come out "あの女は"), the demo's 154 clips 17.75% -> 17.54%. Long audio's windows are not
widened (dev long audio: CER 17.12% -> 17.21%). faster-whisper pads every stretch by 400 ms."""

PUNCTUATE_PROMPT_TOKENS = 64
"""Previous text of a window decoded again for punctuation (the full 223: dev 12% slower)."""

MAX_PROMPT_TOKENS = 223
"""OpenAI's previous-text budget (half the decoder's positions, less one)."""


class _Decoder:
    """One recording's decoding state: backend, options, stats and the pause pass."""

    def __init__(self, backend: Backend, audio: np.ndarray, options: DecodingOptions,
                 stats: LongformStats, single_pass: bool = False,
                 policy: ContextPolicy | None = None,
                 piece_policy: ContextPolicy | None = None) -> None:
        self.backend, self.audio, self.options, self.stats = backend, audio, options, stats
        self.policy = policy  # the encoder's context (None: the backend's own)
        # Pieces decoded again are short (a skipped sentence, a dropped window's stretch): at
        # 30 s the encoder was most of their cost (short-dev long audio: 22% of the time).
        self.piece_policy = piece_policy or policy
        # Windows never decoded again (batched mode, short files) keep their open text;
        # sequential windows leave it to the next window, which starts there.
        self.single_pass = single_pass or options.longform.mode == "batched"
        self.text = TextView(backend)
        self.eot = backend.vocabulary.specials.eot
        self.spans = (speech_spans(audio, options.vad) if options.longform.vad else
                      [SpeechSpan(0.0, audio.size / SAMPLE_RATE)] if audio.size else [])
        pauses = options.longform.pauses
        self.stretches = (pause_stretches(audio, options.vad, pauses)
                          if pauses.active and options.longform.vad else None)

    def window(self, span: SpeechSpan) -> Window:
        inside = tuple(SpeechSpan(max(s.start, span.start), min(s.end, span.end))
                       for s in self.spans if s.end > span.start and s.start < span.end)
        return Window(span, span.samples(self.audio), inside)

    # -- one batch of windows -------------------------------------------------------------

    def decode(self, windows: Sequence[Window], prompt: tuple[int, ...] = (),
               pieces: bool = False, splittable: Sequence[bool] | None = None,
               ) -> tuple[Encoded, list[WindowResult], list[WindowParse | None]]:
        """Encode and decode ``windows`` together (``splittable``: None = this recording's)."""
        encoded = self.backend.encode([w.audio for w in windows],
                                      self.piece_policy if pieces else self.policy)
        if splittable is None:
            splittable = [self.halves(w) is not None for w in windows]
        results = decode_windows(self.backend, encoded, range(len(windows)), self.options,
                                 timestamps=True, prompt=prompt, splittable=splittable)
        return encoded, results, [self.parse(w, r) for w, r in zip(windows, results,
                                                                    strict=True)]

    def parse(self, window: Window, result: WindowResult, keep_open: bool | None = None,
              ) -> WindowParse | None:
        """The window's segments (None when the silence rule dropped it).

        Open text (no closing timestamp) is kept to the window's end in single-pass decoding,
        unless ``keep_open`` says otherwise.
        """
        if result.silent:
            return None
        return parse_window(result.ids, self.backend.vocabulary.timestamps, self.eot,
                            window.audio.size / SAMPLE_RATE,
                            keep_open=self.single_pass if keep_open is None else keep_open)

    def punctuated(self, parse: WindowParse | None) -> bool:
        """Whether the window's text holds any punctuation mark."""
        return parse is not None and any(has_punctuation(self.text.decode(ids))
                                         for _, _, ids in parse.segments)

    def dropped(self, result: WindowResult, parse: WindowParse | None) -> bool:
        """The window gave no usable text (silence rule, kept loop, no segment)."""
        return parse is None or result.looped or not any(
            self.text.decode(ids).strip() for _, _, ids in parse.segments)

    def segments(self, encoded: Encoded, rows: Sequence[int], windows: Sequence[Window],
                 results: Sequence[WindowResult], parses: Sequence[WindowParse],
                 ) -> list[list[Segment]]:
        """Each window's segments at file times, with words and pause cuts when asked for."""
        words = (window_words(self.backend, encoded, rows, windows, parses, self.text,
                              self.options.language)
                 if self.options.longform.word_timestamps else [None] * len(rows))
        found = [window_segments(parse, result, window.span.start, self.text, timed)
                 for window, result, parse, timed in zip(windows, results, parses, words,
                                                         strict=True)]
        if self.stretches is not None:
            found = cut_at_pauses(self.backend, encoded, rows,
                                  [window.span.start for window in windows], found,
                                  self.stretches, self.options.longform.pauses, self.text,
                                  self.options.language)
        return [self.merged(segs) for segs in found]

    def merged(self, segments: list[Segment]) -> list[Segment]:
        """``segments`` with each clause joined to what continues it (``merge_gap_s`` 0: as is)."""
        gap = self.options.longform.pauses.merge_gap_s
        return merge_clauses(segments, gap) if gap > 0 else segments

    # -- retries --------------------------------------------------------------------------

    def halves(self, window: Window) -> tuple[SpeechSpan, SpeechSpan] | None:
        """The window cut in two at a pause, when it is dropped (None: no pause to cut at)."""
        longform = self.options.longform
        if not (longform.vad and longform.retry_dropped):
            return None
        return split_at_pause(window.span, self.stretches or self.spans)

    def decode_pieces(self, spans: Sequence[SpeechSpan]) -> tuple[list[Segment], list[Window]]:
        """Stretches of speech, each decoded as its own window (one dropped is cut again).

        Returns:
            Their segments, and the pieces that still gave no text.
        """
        pieces = [self.window(s) for s in spans
                  if s.duration >= MIN_WINDOW_SECONDS and not is_silent(s.samples(self.audio))]
        out: list[Segment] = []
        lost: list[Window] = []
        for first in range(0, len(pieces), self.options.batch_size):
            batch = pieces[first:first + self.options.batch_size]
            encoded, results, parses = self.decode(batch, pieces=True)
            for row, (piece, result, parse) in enumerate(zip(batch, results, parses,
                                                             strict=True)):
                if parse is not None and not self.dropped(result, parse):
                    out.extend(self.segments(encoded, [row], [piece], [result], [parse])[0])
                elif again := self.recut(piece):
                    out.extend(again)
                else:
                    lost.append(piece)
        return out, lost

    def recut(self, window: Window) -> list[Segment]:
        """A dropped window cut in two at its longest pause, each half decoded alone.

        A half that is dropped again is cut again, down to pieces with no pause to cut at;
        what is then still silent is lost. The halves' clauses are joined as a window's are.
        """
        halves = self.halves(window)
        if halves is None:
            return []  # nothing smaller to try
        out, lost = self.decode_pieces(halves)
        if out:  # else the caller counts the whole window as lost
            for piece in lost:
                self.give_up(piece)
        return self.merged(sorted(out, key=lambda s: s.start))

    def fill(self, window: Window, found: list[Segment], before: float = float("inf"),
             ) -> list[Segment]:
        """``found`` with the window's speech they skipped (before ``before``) decoded again."""
        if not (self.options.longform.vad and self.options.longform.retry_dropped):
            return found  # without VAD nothing says where the speech is
        gaps = [g for g in uncovered(window, found) if g.start < before]
        if not gaps:
            return found
        self.stats.filled += 1
        extra, lost = self.decode_pieces(gaps)
        for piece in lost:
            self.give_up(piece)
        # Each gap is decoded alone, so a sentence split over two gaps (a date, then the rest
        # after a comma pause) comes back as clauses: they are joined as a window's are.
        return self.merged(sorted([*found, *extra], key=lambda s: s.start))

    def give_up(self, window: Window) -> None:
        self.stats.lost_windows += 1
        self.stats.lost_speech_s += window.speech_seconds
        self.stats.lost_at.append(round(window.span.start, 2))


def _prompt_room(backend: Backend, options: DecodingOptions) -> int:
    """Previous-text tokens a window may carry: OpenAI's 223, fewer if the decoder is full."""
    return max(0, min(MAX_PROMPT_TOKENS, backend.max_positions - options.max_new_tokens - 5))


def _sequential(decoder: _Decoder, prompt: list[int], cancelled: Callable[[], bool],
                ) -> Iterator[Segment]:
    """OpenAI's loop over each speech stretch: decode 30 s, seek by the last timestamp."""
    options, stats = decoder.options, decoder.stats
    room = (_prompt_room(decoder.backend, options)
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
                found = _recover(decoder, window, result, encoded, parse, bool(used))
                yield from found
                prompt = [*prompt, *(t for s in found for t in s.token_ids)]
                seek += size
                continue
            found = decoder.segments(encoded, [0], [window], [result], [parse])[0]
            stats.looped += result.looped
            advance = (seek_after(window, found, parse.seek)
                       if options.longform.vad and options.longform.retry_dropped else parse.seek)
            found = decoder.fill(window, found, before=window.span.start + advance)
            yield from found
            prompt = [] if result.looped else [*prompt, *(t for s in found for t in s.token_ids)]
            seek += max(1, round(advance * SAMPLE_RATE))


def _recover(decoder: _Decoder, window: Window, result: WindowResult, encoded: Encoded,
             parse: WindowParse | None, retried: bool, row: int = 0) -> list[Segment]:
    """A dropped window: cut at VAD stretches and decoded again, else counted as lost.

    A looping window whose retries still loop keeps its (flagged) text: it is not silence.
    Its open text, the loop cut where it began, is dropped as sequential decoding drops open
    text, and the speech from there on is decoded in pieces (:meth:`_Decoder.fill`): kept, it
    spanned the rest of its window, and that speech was never retried (short2 set of
    ``benchmarks/heldout_longform.py``: deletions 2.53% -> 4.35% when the loop was kept).
    """
    stats = decoder.stats
    found = decoder.recut(window) if decoder.options.longform.retry_dropped else []
    if decoder.options.longform.retry_dropped and not retried:
        stats.retried += 1
    if found:
        stats.recovered += 1
        return found
    if parse is not None and result.looped:
        stats.looped += 1
        closed = decoder.parse(window, result, keep_open=False) or parse
        kept = decoder.segments(encoded, [row], [window], [result], [closed])[0]
        # Cut at a pause, its speech was decoded again already: its halves were silent.
        return kept if decoder.halves(window) else decoder.fill(window, kept)
    if window.speech_seconds > 0:
        decoder.give_up(window)
    return []


def _batched(decoder: _Decoder, prompt: tuple[int, ...], cancelled: Callable[[], bool],
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


def _batched_windows(decoder: _Decoder, prompt: tuple[int, ...],
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
                yield _recover(decoder, window, results[i], encoded, parses[i], False, i)


def _punctuate(decoder: _Decoder, batch: Sequence[Window], encoded: Encoded,
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
    room = min(PUNCTUATE_PROMPT_TOKENS, _prompt_room(decoder.backend, decoder.options))
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
    decoder = _Decoder(backend, np.asarray(audio, dtype=np.float32), options,
                       stats if stats is not None else LongformStats(),
                       piece_policy=piece_policy)
    stop = cancelled or _never
    if options.longform.mode == "batched":
        yield from _batched(decoder, tuple(prompt), stop)
    else:
        yield from _sequential(decoder, list(prompt), stop)


def short_files_segments(backend: Backend, audios: Sequence[np.ndarray],
                         options: DecodingOptions, stats: Sequence[LongformStats],
                         prompt: tuple[int, ...] = (), policy: ContextPolicy | None = None,
                         ) -> list[list[Segment]]:
    """Segments of many recordings of at most 30 s, their windows decoded together.

    Each recording's speech (VAD) is one window; windows of different files share batches of
    ``batch_size``, sorted by length, as ``evaluate`` batches clips: many short files cost
    a fraction of decoding them one by one. Pauses, words, guards and retries apply per file
    as in :func:`long_audio_segments`; every window gets ``prompt`` (the initial prompt), and
    the encoder runs at ``policy`` (None: the backend's own).
    """
    decoders = [_Decoder(backend, np.asarray(a, dtype=np.float32), options, s, single_pass=True,
                         policy=policy) for a, s in zip(audios, stats, strict=True)]
    windows = [(i, d.window(span)) for i, d in enumerate(decoders)
               for span in batch_windows(d.audio, options.vad, options.longform.vad,
                                         SHORT_FILE_EDGE_S)]
    windows.sort(key=lambda item: item[1].audio.size)
    found: list[list[Segment]] = [[] for _ in audios]
    for first in range(0, len(windows), options.batch_size):
        batch = windows[first:first + options.batch_size]
        encoded, results, parses = decoders[0].decode(
            [w for _, w in batch], prompt,
            splittable=[decoders[owner].halves(w) is not None for owner, w in batch])
        for row, ((owner, window), result, parse) in enumerate(zip(batch, results, parses,
                                                                   strict=True)):
            decoder = decoders[owner]
            decoder.stats.windows += 1
            if parse is not None and not decoder.dropped(result, parse):
                decoder.stats.looped += result.looped
                found[owner].extend(decoder.fill(window, decoder.segments(
                    encoded, [row], [window], [result], [parse])[0]))
            else:
                found[owner].extend(_recover(decoder, window, result, encoded, parse, False,
                                             row))
    return [sorted(segments, key=lambda s: s.start) for segments in found]


def _never() -> bool:
    return False
