"""Whisper's timestamp tokens: ids from the tokenizer, times from ids, timestamped labels.

Whisper writes times as tokens ``<|0.00|>`` .. ``<|30.00|>`` in steps of 0.02 s (one encoder
position, :data:`~whisper_ja.audio.constants.TOKENS_PER_SECOND`). Their ids are never written as
literals here: the base id (that of ``<|0.00|>``) is looked up in the tokenizer, because the
large-v3 vocabulary (51,866 ids, ``<|yue|>`` added) moves it up by one.

A timestamped transcript of a window reads::

    <|t0|> text one <|t1|><|t2|> text two <|t3|> ... <|endoftext|>

(each segment opens and closes with its start and end times, OpenAI's format).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from whisper_ja.audio.constants import CHUNK_SECONDS, TOKENS_PER_SECOND

__all__ = [
    "MAX_PROMPT_TOKENS",
    "NUM_TIMESTAMP_TOKENS",
    "TIME_PRECISION",
    "LabelMix",
    "TimedText",
    "TimestampVocab",
    "mixed_label_ids",
]

MAX_PROMPT_TOKENS = 223
"""Previous-text tokens kept in a prompt: half the decoder context minus one (OpenAI)."""

TIME_PRECISION = 1.0 / TOKENS_PER_SECOND
"""Seconds between two timestamp tokens (0.02 s)."""

NUM_TIMESTAMP_TOKENS = CHUNK_SECONDS * TOKENS_PER_SECOND + 1
"""1501 tokens: ``<|0.00|>`` .. ``<|30.00|>``."""


@dataclass(frozen=True)
class TimedText:
    """A stretch of a window (seconds from the window's start) and its text."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class TimestampVocab:
    """The timestamp tokens of one tokenizer.

    Attributes:
        base: Id of ``<|0.00|>``; every id from it up to ``base + 1500`` is a timestamp.
        count: Number of timestamp tokens the vocabulary holds (1501 in every Whisper).
    """

    base: int
    count: int = NUM_TIMESTAMP_TOKENS

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TimestampVocab:
        """Look the timestamp ids up in a Whisper tokenizer.

        Raises:
            ValueError: the tokenizer has no ``<|0.00|>`` token, or its timestamps are not
                consecutive ids (so none of this arithmetic would hold).
        """
        base = tokenizer.convert_tokens_to_ids("<|0.00|>")
        if not isinstance(base, int) or base == tokenizer.unk_token_id:
            raise ValueError("tokenizer has no <|0.00|> token: timestamps cannot be used")
        last = tokenizer.convert_tokens_to_ids(f"<|{CHUNK_SECONDS:.2f}|>")
        if last != base + NUM_TIMESTAMP_TOKENS - 1:
            raise ValueError(f"timestamp tokens are not consecutive: <|0.00|> is {base}, "
                             f"<|{CHUNK_SECONDS:.2f}|> is {last}")
        return cls(base=base)

    def is_timestamp(self, token_id: int) -> bool:
        """Whether ``token_id`` is one of the timestamp tokens."""
        return self.base <= token_id < self.base + self.count

    def to_time(self, token_id: int) -> float:
        """Seconds a timestamp token stands for.

        Raises:
            ValueError: ``token_id`` is not a timestamp.
        """
        if not self.is_timestamp(token_id):
            raise ValueError(f"token {token_id} is not a timestamp (base {self.base})")
        return round((token_id - self.base) * TIME_PRECISION, 2)

    def to_token(self, seconds: float) -> int:
        """The timestamp token nearest to ``seconds``, clamped to the window (0..30 s)."""
        index = round(seconds / TIME_PRECISION)
        return self.base + min(max(index, 0), self.count - 1)

    def label_ids(self, segments: Sequence[TimedText], tokenizer: Any) -> list[int]:
        """Text ids of a timestamped transcript: ``<|s|> text <|e|>`` for each segment.

        Args:
            segments: Stretches of the window, in time order (seconds from its start).
            tokenizer: The Whisper tokenizer whose text ids to use.

        Raises:
            ValueError: segments out of order, overlapping, or with ``end < start``.
        """
        ids: list[int] = []
        previous_end = 0.0
        for segment in segments:
            if segment.end < segment.start or segment.start < previous_end - TIME_PRECISION:
                raise ValueError(f"segments must be ordered and not overlap: {segment} after "
                                 f"end {previous_end}")
            previous_end = segment.end
            text_ids = tokenizer(segment.text, add_special_tokens=False)["input_ids"]
            ids.extend([self.to_token(segment.start), *(int(i) for i in text_ids),
                        self.to_token(segment.end)])
        return ids

    def split(self, token_ids: Sequence[int], text_limit: int
              ) -> tuple[list[tuple[float, float, list[int]]], bool]:
        """Cut generated ids into timed segments (seconds from the window's start).

        A segment is text between a start and an end timestamp. Text after the last
        timestamp (no closing time) is returned as a segment whose end is ``-1.0``: the caller
        decides where it ends.

        Args:
            token_ids: Generated ids (prefix and specials may be present; ids at or above
                ``text_limit`` that are not timestamps are dropped).
            text_limit: First special id (``<|endoftext|>``): ids below it are text.

        Returns:
            ``(segments as (start, end, text ids), well_formed)``: ``well_formed`` is True when
            the window opens with a timestamp and every text run is closed by one.
        """
        segments: list[tuple[float, float, list[int]]] = []
        start: float | None = None
        text: list[int] = []
        opened = False
        well_formed = True
        for token in token_ids:
            if self.is_timestamp(token):
                time = self.to_time(token)
                if start is None or not text:
                    start = time  # opening (or a repeated opening) timestamp
                    opened = True
                else:
                    segments.append((start, time, text))
                    start, text = None, []
            elif token < text_limit:
                if not opened:
                    well_formed = False
                text.append(token)
        if text:
            well_formed = False
            segments.append((start if start is not None else 0.0, -1.0, text))
        return segments, well_formed and opened


@dataclass(frozen=True)
class LabelMix:
    """How often labels carry timestamps and a previous-text prompt (training settings).

    Each utterance's draw is a hash of ``(seed, id)``: the same clip gets the same label in
    every epoch and every process, and LoRA and full runs see identical labels.

    Attributes:
        timestamp_probability: Share of labels with timestamp tokens (distil-whisper's name).
        condition_on_prev: Share of labels prompted with the previous text.
        seed: The run's seed.
    """

    timestamp_probability: float
    condition_on_prev: float
    seed: int

    def draw(self, utterance_id: str, what: str) -> float:
        """A uniform number in [0, 1) fixed by seed, utterance and purpose."""
        digest = hashlib.sha256(f"{self.seed}/{what}/{utterance_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


def mixed_label_ids(text: str, segments: Sequence[TimedText], duration: float, tokenizer: Any,
                    mix: LabelMix, utterance_id: str, language: str = "ja",
                    previous_text: str = "") -> tuple[list[int], int]:
    """Label ids of one clip with timestamps and a previous-text prompt, each at its rate.

    A timestamped label is ``sot, lang, transcribe, <|s|> text <|e|> ..., eot`` (no
    ``<|notimestamps|>``); a clip without ``segments`` gets one segment from 0 s to its
    duration (its speech boundaries: clips are cut at their speech). A prompted label starts
    with ``<|startofprev|>`` and the last :data:`MAX_PROMPT_TOKENS` tokens of
    ``previous_text``; the model is not trained to write the prompt (see the returned length).

    Returns:
        ``(label ids, prompt length)``: the first ``prompt length`` ids are the prompt; their
        targets must be ignored by the loss.

    Raises:
        ValueError: bad segments, or an unknown ``language``.
    """
    # Imported here, not at the top: the package whisper_ja.model loads transformers (~2.5 s),
    # which every module importing the manifest would pay, the synthesis pool's workers too.
    from whisper_ja.model.tokens import language_id, special_tokens

    specials = special_tokens(tokenizer)
    lang = specials.ja if language == "ja" else language_id(tokenizer, language)
    timed = mix.draw(utterance_id, "timestamps") < mix.timestamp_probability
    if timed:
        vocab = TimestampVocab.from_tokenizer(tokenizer)
        parts = list(segments) or [TimedText(0.0, min(duration, CHUNK_SECONDS), text)]
        body = [specials.sot, lang, specials.transcribe, *vocab.label_ids(parts, tokenizer)]
    else:
        body = [specials.sot, lang, specials.transcribe, specials.no_timestamps,
                *(int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"])]
    prompt: list[int] = []
    if previous_text and mix.draw(utterance_id, "prompt") < mix.condition_on_prev:
        previous = tokenizer(previous_text, add_special_tokens=False)["input_ids"]
        prompt = [specials.prev_text, *(int(i) for i in previous[-MAX_PROMPT_TOKENS:])]
    return [*prompt, *body, specials.eot], len(prompt)
