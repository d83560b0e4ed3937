"""The pieces long-form decoding passes around: windows, their segments, and the stats.

Kept apart from :mod:`whisper_ja.inference.longform` so the decoding loops read on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from whisper_ja.inference.backend import Backend, Encoded, WindowResult
from whisper_ja.inference.timestamps import (
    Segment,
    SpeechSpan,
    WindowParse,
    Word,
    group_words,
)

__all__ = ["LongformStats", "TextView", "Window", "describe", "seek_after", "split_at_pause",
           "uncovered", "window_segments", "window_words"]

UNCOVERED_MIN_S = 1.5
"""VAD speech that no segment covers for this long is decoded again (a sentence skipped)."""

COVER_PAD_S = 0.5
"""A segment covers the speech this far beyond its own times (Whisper's times are coarse)."""

SPLIT_MIN_S = 2.0
"""Each piece of a window cut at a pause is at least this long (a clause, not a word)."""


@dataclass
class LongformStats:
    """What happened to a recording's windows (filled while its segments are consumed).

    Attributes:
        windows: Windows decoded (first attempts).
        filled: Windows whose text skipped speech VAD heard, decoded again there.
        retried: Windows whose text was dropped and that were decoded again.
        recovered: Of those, windows whose retry gave text.
        cut_at_pause: Windows (or pieces) decoded again in two halves cut at a pause: dropped,
            or looping at greedy decoding (then not sampled).
        lost_windows: Windows whose text is still dropped although VAD heard speech.
        lost_speech_s: Seconds of VAD speech in those windows.
        looped: Windows whose kept text still loops (a likely hallucination).
        punctuated: Batched windows written without punctuation and decoded again after a
            punctuated neighbour's text (that reading kept).
    """

    windows: int = 0
    filled: int = 0
    retried: int = 0
    recovered: int = 0
    cut_at_pause: int = 0
    lost_windows: int = 0
    lost_speech_s: float = 0.0
    looped: int = 0
    punctuated: int = 0
    lost_at: list[float] = field(default_factory=list)


class TextView:
    """The backend's detokenizer under the name pause cuts and segments call."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (special and timestamp ids skipped either way)."""
        return self._backend.decode_text(list(ids))


@dataclass(frozen=True)
class Window:
    """A window being decoded: where it is and what VAD heard inside it."""

    span: SpeechSpan
    audio: np.ndarray
    speech: tuple[SpeechSpan, ...]

    @property
    def speech_seconds(self) -> float:
        """Seconds of VAD speech in the window."""
        return sum(s.duration for s in self.speech)


def window_segments(parse: WindowParse, result: WindowResult, offset: float, text: TextView,
                     words: Sequence[Sequence[Word]] | None) -> list[Segment]:
    """One window's segments at file times (each keeps the window's scores and loop flag)."""
    segments = []
    for index, (start, end, ids) in enumerate(parse.segments):
        content = text.decode(ids).strip()
        if not content:
            continue
        segments.append(Segment(
            round(offset + start, 3), round(offset + end, 3), content,
            tuple(words[index]) if words is not None else (), ids, result.avg_logprob,
            result.no_speech_prob, result.looped, parse.well_formed))
    return segments


def uncovered(window: Window, segments: Sequence[Segment]) -> list[SpeechSpan]:
    """The window's VAD speech that none of ``segments`` covers, in pieces of at least 1.5 s.

    Whisper sometimes writes a window's first sentences and stops, or skips a sentence in the
    middle: the speech is there (VAD heard it) but no segment covers it. Uncovered stretches
    with no segment between them are one piece: decoded apart, a sentence split at its comma
    pauses came back as fragments without context (short-dev set of
    ``benchmarks/heldout_longform.py``: "2011年10月11日" / "小林ともみさんは。" /
    "やちおしの自宅で。", 八千代市 misheard).
    """
    covers = sorted((s.start - COVER_PAD_S, s.end + COVER_PAD_S) for s in segments)
    pieces = _uncovered_pieces(window, covers)
    joined: list[SpeechSpan] = []
    for piece in pieces:
        last = joined[-1] if joined else None
        if last is not None and not any(start < piece.start and end > last.end
                                        for start, end in covers):
            joined[-1] = SpeechSpan(last.start, piece.end)
        else:
            joined.append(piece)
    return [p for p in joined if p.duration >= UNCOVERED_MIN_S]


def _uncovered_pieces(window: Window, covers: Sequence[tuple[float, float]],
                      ) -> list[SpeechSpan]:
    """Each VAD stretch of ``window`` less the ``covers`` (padded segment spans), in order."""
    pieces = []
    for speech in window.speech:
        cursor = speech.start
        for start, end in covers:
            if end <= cursor or start >= speech.end:
                continue
            if start > cursor:
                pieces.append(SpeechSpan(cursor, start))
            cursor = max(cursor, end)
        if speech.end > cursor:
            pieces.append(SpeechSpan(cursor, speech.end))
    return pieces


def split_at_pause(span: SpeechSpan, stretches: Sequence[SpeechSpan],
                   ) -> tuple[SpeechSpan, SpeechSpan] | None:
    """``span`` in two, cut at its longest pause that leaves ``SPLIT_MIN_S`` each side.

    ``stretches`` are the speech stretches (the pause pass's, else VAD's); None when no pause
    inside ``span`` leaves two such pieces. The longest pause is the likeliest sentence end, so
    the pieces keep whole sentences where they can.
    """
    inside = [s for s in stretches if s.end > span.start and s.start < span.end]
    best: tuple[float, SpeechSpan, SpeechSpan] | None = None
    for left, right in zip(inside, inside[1:], strict=False):
        end, start = min(left.end, span.end), max(right.start, span.start)
        if start < end or end - span.start < SPLIT_MIN_S or span.end - start < SPLIT_MIN_S:
            continue
        if best is None or start - end > best[0]:
            best = (start - end, SpeechSpan(span.start, end), SpeechSpan(start, span.end))
    return None if best is None else (best[1], best[2])


def seek_after(window: Window, found: Sequence[Segment], seek: float) -> float:
    """Seconds to seek: the model's seek, or its last segment's end when speech follows it.

    OpenAI's rule consumes the whole window when the output ends with a single timestamp;
    when VAD still hears uncovered speech after the last segment, the next window starts
    at that segment's end instead, so the speech is decoded rather than skipped.
    """
    if not found:
        return seek
    last_end = max(s.end for s in found) - window.span.start
    after = [g for g in uncovered(window, found) if g.start >= window.span.start + last_end]
    if after and 1.0 <= last_end < seek:
        return last_end
    return seek


def describe(stats: LongformStats) -> dict[str, Any]:
    """The stats as the JSON output and reports write them."""
    return {"windows": stats.windows, "filled": stats.filled, "retried": stats.retried,
            "recovered": stats.recovered, "cut_at_pause": stats.cut_at_pause,
            "lost_windows": stats.lost_windows, "lost_speech_s": round(stats.lost_speech_s, 2),
            "lost_at_s": list(stats.lost_at), "looped_windows": stats.looped,
            "punctuated_again": stats.punctuated}


def window_words(backend: Backend, encoded: Encoded, rows: Sequence[int],
                 windows: Sequence[Window], parses: Sequence[WindowParse], text: TextView,
                 language: str) -> list[list[list[Word]] | None]:
    """Words of each window's segments: the window's text aligned at once, split by segment."""
    texts = [[t for _, _, ids in parse.segments for t in ids] for parse in parses]
    asked = [i for i, ids in enumerate(texts) if ids]
    aligned = dict(zip(asked, backend.align(encoded, [rows[i] for i in asked],
                                            [texts[i] for i in asked], language), strict=True))
    out: list[list[list[Word]] | None] = []
    for i, parse in enumerate(parses):
        if i not in aligned:
            out.append(None)
            continue
        found, first, per_segment = aligned[i], 0, []
        for _, _, ids in parse.segments:
            last = first + len(ids)
            per_segment.append(group_words(
                ids, found.starts[first:last], found.ends[first:last], text,
                windows[i].span.start, list(found.probs[first:last])))
            first = last
        out.append(per_segment)
    return out
