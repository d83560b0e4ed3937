"""Timed transcripts: segments and words, and how one decoded window becomes segments.

:func:`parse_window` applies OpenAI's rules (``whisper/transcribe.py``) to the ids Whisper wrote
for one 30 s window with timestamps on: complete ``<|s|> text <|e|>`` segments are kept, and the
next window starts (seeks) at the last timestamp when the model stopped mid-way, or after the
whole window when its last segment ended with a single timestamp (nothing follows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from whisper_ja.audio.constants import SAMPLE_RATE
from whisper_ja.data.timestamps import TimestampVocab

__all__ = ["Segment", "SpeechSpan", "WindowParse", "Word", "group_words", "parse_window",
           "word_spans"]


@dataclass(frozen=True)
class Word:
    """A word (for Japanese: a run of tokens that decodes to whole characters) and its times.

    Attributes:
        start: Seconds from the start of the file.
        end: Seconds from the start of the file.
        text: The word.
        probability: The model's mean token probability for it (1.0 when unknown).
    """

    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    """A timed stretch of a transcript (seconds from the start of the file).

    Attributes:
        start: Where it starts.
        end: Where it ends.
        text: Its text.
        words: Word timings, when asked for.
        token_ids: Its text token ids (previous-text prompts are built from them).
        avg_logprob: Mean log-probability of the window's tokens (None when unknown).
        no_speech_prob: Whisper's no-speech probability of the window (None when unknown).
        looped: The window's output repeated itself (a likely hallucination).
        timed: The window's timestamps were well formed (False: times are the window's).
    """

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    token_ids: tuple[int, ...] = ()
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    looped: bool = False
    timed: bool = True


@dataclass(frozen=True)
class WindowParse:
    """The segments of one window and where the next window starts.

    Attributes:
        segments: ``(start, end, text ids)`` in seconds from the window's start.
        seek: Seconds from the window's start where the next window begins (> 0).
        well_formed: The window opened with a timestamp and closed every segment.
    """

    segments: tuple[tuple[float, float, tuple[int, ...]], ...]
    seek: float
    well_formed: bool


def parse_window(token_ids: Sequence[int], vocab: TimestampVocab, text_limit: int,
                 window_seconds: float, keep_open: bool = False) -> WindowParse:
    """Segments of one decoded window, and how far to seek (OpenAI's rules).

    - Text left open at the end (no closing timestamp) is dropped and the next window starts
      at its opening time, so it is decoded again with its full context, unless it is the
      only text of the window (then it is kept, ending at the window's end).
    - Output that ends with an opening timestamp and no text (``<|e|><|s|>``) seeks to it.
    - Otherwise (a single closing timestamp ends the output) the whole window is consumed.
    - Text without any timestamp becomes one segment covering the window.

    Args:
        token_ids: Generated ids after the task prefix (specials other than timestamps are
            ignored).
        vocab: The tokenizer's timestamp ids.
        text_limit: First special id (``<|endoftext|>``); ids below it are text.
        window_seconds: Length of the audio in the window (<= 30 s).
        keep_open: Keep open text as a segment ending at the window's end instead of seeking
            back to it (windows that are never decoded again: batched mode).
    """
    pieces, well_formed = vocab.split(token_ids, text_limit)
    # Times past the window's audio (a window shorter than 30 s) are held to its end.
    closed = [(min(s, window_seconds), min(e, window_seconds), tuple(t))
              for s, e, t in pieces if e >= 0]
    open_text = [(s, tuple(t)) for s, e, t in pieces if e < 0]
    stamps = [t for t in token_ids if vocab.is_timestamp(t)]
    seek = window_seconds
    if open_text:
        start, text = open_text[0]
        if closed and 0 < start < window_seconds and not keep_open:
            seek = start
        else:
            closed.append((min(start, window_seconds), window_seconds, text))
    elif closed and len(stamps) >= 2:
        tail = [t for t in token_ids if vocab.is_timestamp(t) or t < text_limit]
        dangling = len(tail) >= 2 and vocab.is_timestamp(tail[-1]) and vocab.is_timestamp(
            tail[-2]) and len(stamps) % 2 == 1
        last = vocab.to_time(tail[-1])
        if dangling and 0 < last < window_seconds:
            seek = last
    return WindowParse(segments=_timed(closed), seek=seek, well_formed=well_formed)


def _timed(pieces: Sequence[tuple[float, float, tuple[int, ...]]],
           ) -> tuple[tuple[float, float, tuple[int, ...]], ...]:
    """Pieces with text, each lasting at least from the previous one's end when it would not.

    A piece whose times collapse (both clipped to the end of a short window, or one timestamp
    written twice, as a repetition cut can leave) still holds spoken text: it starts where
    the text before it ended instead of being a zero-length cue.
    """
    out = []
    previous_end = 0.0
    for start, end, text in pieces:
        if not text:
            continue
        if end <= start:
            start = min(start, previous_end)
        out.append((start, max(end, start), text))
        previous_end = max(previous_end, end)
    return tuple(out)


@dataclass(frozen=True)
class SpeechSpan:
    """A stretch of a file in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        """Its length in seconds."""
        return self.end - self.start

    def samples(self, audio: np.ndarray) -> np.ndarray:
        """Its samples in a 16 kHz clip."""
        return audio[round(self.start * SAMPLE_RATE):round(self.end * SAMPLE_RATE)]


def word_spans(text_ids: Sequence[int], tokenizer: Any) -> list[tuple[int, int]]:
    """``(first, stop)`` token indices of each word of ``text_ids``, in order.

    Words are runs of tokens that decode to whole characters (Japanese has no spaces; a
    character may span tokens), as OpenAI splits Japanese. Tokens left over at the end (an
    incomplete character) form no word.

    Args:
        text_ids: Text token ids (no specials, no timestamps).
        tokenizer: Anything with ``decode(ids)`` (transformers or ``tokenizers``).
    """
    spans: list[tuple[int, int]] = []
    first = 0
    for index in range(len(text_ids)):
        if "\ufffd" not in tokenizer.decode(list(text_ids[first:index + 1])):
            spans.append((first, index + 1))
            first = index + 1
    return spans


def group_words(text_ids: Sequence[int], starts: Sequence[float] | np.ndarray,
                ends: Sequence[float] | np.ndarray, tokenizer: Any, offset: float,
                probabilities: Sequence[float] | None = None) -> list[Word]:
    """Words of a window's text tokens, given each token's start and end.

    Words are :func:`word_spans`. Shared by the cross-attention DTW here and CTranslate2's
    own alignment (:mod:`whisper_ja.inference.ct2_longform`).

    Args:
        text_ids: Text token ids (no specials, no timestamps).
        starts: Each token's start, seconds from the window's start.
        ends: Each token's end, seconds from the window's start.
        tokenizer: Anything with ``decode(ids)`` (transformers or ``tokenizers``).
        offset: The window's start in the file (seconds).
        probabilities: Each token's probability (a word gets its tokens' mean); None: 1.0.
    """
    words: list[Word] = []
    for first, stop in word_spans(text_ids, tokenizer):
        probability = (float(np.mean(probabilities[first:stop]))
                       if probabilities is not None else 1.0)
        words.append(Word(round(offset + float(starts[first]), 3),
                          round(offset + float(ends[stop - 1]), 3),
                          tokenizer.decode(list(text_ids[first:stop])), probability))
    return words
