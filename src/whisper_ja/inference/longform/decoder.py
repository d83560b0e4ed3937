"""One recording's window decoding, and the retries that keep speech from being lost.

:class:`WindowDecoder` decodes a batch of windows (guards, timestamps, words, pause cuts,
clause merge) and decodes again what they dropped or skipped; both long-form modes
(:mod:`.modes`) and short files (:mod:`.short_files`) run on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.audio.features import ContextPolicy
from whisper_ja.audio.io import is_silent
from whisper_ja.inference.backend import Backend, Encoded, WindowResult
from whisper_ja.inference.clauses import merge_clauses
from whisper_ja.inference.guards import decode_windows
from whisper_ja.inference.options import DecodingOptions
from whisper_ja.inference.pause_split import cut_at_pauses
from whisper_ja.inference.timestamps import Segment, SpeechSpan, WindowParse, parse_window
from whisper_ja.inference.vad import pause_stretches, speech_spans
from whisper_ja.inference.windows import (
    LongformStats,
    TextView,
    Window,
    split_at_pause,
    uncovered,
    window_segments,
    window_words,
)
from whisper_ja.text.sentences import has_punctuation

__all__ = ["MIN_WINDOW_SECONDS", "WindowDecoder", "prompt_room", "recover"]

MIN_WINDOW_SECONDS = 0.3
"""A remainder shorter than this after seeking is not decoded (too short to hold a word)."""

MAX_PROMPT_TOKENS = 223
"""OpenAI's previous-text budget (half the decoder's positions, less one)."""


class WindowDecoder:
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
        """The window over ``span``, with the VAD speech inside it."""
        inside = tuple(SpeechSpan(max(s.start, span.start), min(s.end, span.end))
                       for s in self.spans if s.end > span.start and s.start < span.end)
        return Window(span, span.samples(self.audio), inside)

    # -- one batch of windows -------------------------------------------------------------

    def decode(self, windows: Sequence[Window], prompt: tuple[int, ...] = (),
               pieces: bool = False, splittable: Callable[[int], bool] | None = None,
               ) -> tuple[Encoded, list[WindowResult], list[WindowParse | None]]:
        """Encode and decode ``windows`` together.

        ``splittable``: whether the window at an index, if its greedy reading loops, is cut
        at a pause rather than sampled (None: whether this recording's :meth:`halves` can).
        """
        encoded = self.backend.encode([w.audio for w in windows],
                                      self.piece_policy if pieces else self.policy)
        def own(index: int) -> bool:
            return self.halves(windows[index]) is not None

        results = decode_windows(self.backend, encoded, range(len(windows)), self.options,
                                 timestamps=True, prompt=prompt, splittable=splittable or own)
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

    @property
    def retries(self) -> bool:
        """Speech is decoded again where text missed it: asked for, and VAD says where."""
        return self.options.longform.vad and self.options.longform.retry_dropped

    def halves(self, window: Window) -> tuple[SpeechSpan, SpeechSpan] | None:
        """The window cut in two at a pause, when it is dropped (None: no pause to cut at)."""
        if not self.retries:
            return None
        return split_at_pause(window.span, self.stretches or self.spans)

    def decode_pieces(self, spans: Sequence[SpeechSpan], split: bool = True,
                      ) -> tuple[list[Segment], list[Window]]:
        """Stretches of speech, each decoded as its own window.

        Args:
            spans: The stretches.
            split: A piece that is dropped may be cut in two (:meth:`recut`); False for the
                halves of a cut, so speech is cut at most once.

        Returns:
            Their segments, and the pieces that still gave no text.
        """
        pieces = [self.window(s) for s in spans
                  if s.duration >= MIN_WINDOW_SECONDS and not is_silent(s.samples(self.audio))]
        out: list[Segment] = []
        lost: list[Window] = []
        for first in range(0, len(pieces), self.options.batch_size):
            batch = pieces[first:first + self.options.batch_size]
            encoded, results, parses = self.decode(
                batch, pieces=True, splittable=None if split else _never_split)
            for row, (piece, result, parse) in enumerate(zip(batch, results, parses,
                                                             strict=True)):
                if parse is not None and not self.dropped(result, parse):
                    out.extend(self.segments(encoded, [row], [piece], [result], [parse])[0])
                elif split and (again := self.recut(piece)):
                    out.extend(again)
                else:
                    lost.append(piece)
        return out, lost

    def recut(self, window: Window) -> list[Segment] | None:
        """A dropped window cut in two at its longest pause, each half decoded alone.

        The halves get every guard (a half that loops is sampled) but are not cut again: a
        model that loops on every piece would otherwise cost a greedy attempt at each of
        ever more pieces. What stays silent is lost. The halves' clauses are joined as a
        window's are.

        Returns:
            The halves' segments (empty: both silent), or None when there is no pause to cut
            at (or retries are off).
        """
        halves = self.halves(window)
        if halves is None:
            return None
        self.stats.cut_at_pause += 1
        out, lost = self.decode_pieces(halves, split=False)
        if out:  # else the caller counts the whole window as lost
            for piece in lost:
                self.give_up(piece)
        return self.merged(sorted(out, key=lambda s: s.start))

    def fill(self, window: Window, found: list[Segment], before: float = float("inf"),
             ) -> list[Segment]:
        """``found`` with the window's speech they skipped (before ``before``) decoded again."""
        if not self.retries:
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
        """Count the window's speech as lost."""
        self.stats.lost_windows += 1
        self.stats.lost_speech_s += window.speech_seconds
        self.stats.lost_at.append(round(window.span.start, 2))


def _never_split(index: int) -> bool:
    return False


def prompt_room(backend: Backend, options: DecodingOptions) -> int:
    """Previous-text tokens a window may carry: OpenAI's 223, fewer if the decoder is full."""
    return max(0, min(MAX_PROMPT_TOKENS, backend.max_positions - options.max_new_tokens - 5))


def recover(decoder: WindowDecoder, window: Window, result: WindowResult, encoded: Encoded,
             parse: WindowParse | None, retried: bool, row: int = 0) -> list[Segment]:
    """A dropped window: cut at a pause and decoded again, else counted as lost.

    A looping window with no pause to cut at, whose samples still loop, keeps its (flagged)
    text: it is not silence. Its open text, the loop cut where it began, is dropped as
    sequential decoding drops open text, and the speech from there on is decoded in pieces
    (:meth:`WindowDecoder.fill`): kept, it spanned the rest of its window, and that speech
    was never retried.
    """
    stats = decoder.stats
    found = decoder.recut(window)
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
        return kept if found is not None else decoder.fill(window, kept)
    if window.speech_seconds > 0:
        decoder.give_up(window)
    return []

