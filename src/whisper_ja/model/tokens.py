"""Whisper's special-token ids, looked up in the model's own tokenizer (never constants).

The multilingual vocabularies differ between generations: tiny … large-v2 have 99 languages
(51,865 ids), large-v3, large-v3-turbo and kotoba-whisper 100 (51,866 ids, ``<|yue|>`` added).
``<|ja|>`` is 50266 in both, but from ``<|translate|>`` on every special id and the timestamp
base move up by one, so a hard-coded prefix would silently ask large-v3 to *translate*.
:func:`special_tokens` reads every id from the tokenizer by its string and refuses a tokenizer
that lacks one of them (e.g. an English-only model has no ``<|ja|>``).
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import Any

from whisper_ja.errors import ModelError

__all__ = ["LANGUAGE_TOKEN_RANGE", "SpecialTokens", "language_id", "special_tokens"]

_REQUIRED = {
    "sot": "<|startoftranscript|>",
    "eot": "<|endoftext|>",
    "ja": "<|ja|>",
    "transcribe": "<|transcribe|>",
    "translate": "<|translate|>",
    "no_timestamps": "<|notimestamps|>",
    "prev_text": "<|startofprev|>",
}
_NO_SPEECH = ("<|nospeech|>", "<|nocaptions|>")  # named <|nocaptions|> in HF's older tokenizers
_FIRST_TIMESTAMP = "<|0.00|>"

LANGUAGE_TOKEN_RANGE = "between <|startoftranscript|> and <|translate|>"
"""Where Whisper's language tokens sit in every multilingual vocabulary."""


@dataclass(frozen=True)
class SpecialTokens:
    """The special-token ids of one Whisper tokenizer.

    Attributes:
        sot: ``<|startoftranscript|>``.
        eot: ``<|endoftext|>``; every id below it is a text token.
        ja: ``<|ja|>``.
        transcribe: ``<|transcribe|>``.
        translate: ``<|translate|>``.
        no_timestamps: ``<|notimestamps|>``.
        prev_text: ``<|startofprev|>`` (opens a previous-text prompt).
        no_speech: ``<|nospeech|>`` / ``<|nocaptions|>``, or None when absent.
        timestamp_begin: ``<|0.00|>``: the first timestamp id (``no_timestamps + 1``, as
            OpenAI's tokenizer defines it, when the tokenizer has no timestamp tokens).
        vocab_size: Tokens the tokenizer knows (51,865 or 51,866 with timestamps).
    """

    sot: int
    eot: int
    ja: int
    transcribe: int
    translate: int
    no_timestamps: int
    prev_text: int
    no_speech: int | None
    timestamp_begin: int
    vocab_size: int

    @property
    def ja_prefix(self) -> tuple[int, int, int, int]:
        """sot, ja, transcribe, notimestamps: every Japanese label and decoder prompt."""
        return (self.sot, self.ja, self.transcribe, self.no_timestamps)

    @property
    def num_languages(self) -> int:
        """Language tokens in the vocabulary (99 up to large-v2, 100 from large-v3)."""
        return self.translate - self.sot - 1

    def prefix(self, language_token_id: int) -> tuple[int, int, int, int]:
        """The transcription prefix for another language id (from :func:`language_id`)."""
        return (self.sot, language_token_id, self.transcribe, self.no_timestamps)

    def is_text(self, token_id: int) -> bool:
        """Whether ``token_id`` is a text token (not special, not a timestamp)."""
        return 0 <= token_id < self.eot


def _lookup(tokenizer: Any, token: str) -> int | None:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or token_id < 0:
        return None
    # Unknown strings map to the unknown token's id (Whisper's is <|endoftext|>): check the
    # way back, so that only the token itself counts.
    return token_id if tokenizer.convert_ids_to_tokens(token_id) == token else None


_cache: weakref.WeakKeyDictionary[Any, SpecialTokens] = weakref.WeakKeyDictionary()


def special_tokens(tokenizer: Any) -> SpecialTokens:
    """Look up Whisper's special tokens in ``tokenizer`` by their strings (cached per tokenizer).

    Args:
        tokenizer: A Whisper tokenizer (``processor.tokenizer``).

    Raises:
        ModelError: a token whisper-ja needs is missing; ``<|ja|>`` missing means the model
            cannot transcribe Japanese (English-only Whisper), and the message says so.
    """
    try:
        cached = _cache.get(tokenizer)
    except TypeError:  # not weak-referenceable or unhashable
        cached = None
    if cached is not None and cached.vocab_size == len(tokenizer):
        return cached
    found = {name: _lookup(tokenizer, token) for name, token in _REQUIRED.items()}
    if found["ja"] is None:
        raise ModelError("the model's tokenizer has no <|ja|> token, so it cannot transcribe "
                         "Japanese (an English-only Whisper such as *.en?); use a multilingual "
                         "Whisper")
    missing = [_REQUIRED[name] for name, value in found.items() if value is None]
    if missing:
        raise ModelError(f"the model's tokenizer lacks {', '.join(missing)}: not a "
                         "multilingual Whisper tokenizer")
    ids = {name: int(value) for name, value in found.items() if value is not None}
    if not ids["sot"] < ids["ja"] < ids["translate"]:
        raise ModelError(f"the model's tokenizer puts <|ja|> ({ids['ja']}) outside the "
                         f"language tokens ({LANGUAGE_TOKEN_RANGE}): not a Whisper tokenizer")
    first_timestamp = _lookup(tokenizer, _FIRST_TIMESTAMP)
    if first_timestamp is not None and first_timestamp != ids["no_timestamps"] + 1:
        raise ModelError(f"the model's tokenizer has {_FIRST_TIMESTAMP} at {first_timestamp}, "
                         f"not right after <|notimestamps|> ({ids['no_timestamps']})")
    no_speech = next((i for t in _NO_SPEECH if (i := _lookup(tokenizer, t)) is not None), None)
    result = SpecialTokens(**ids, no_speech=no_speech,
                           timestamp_begin=ids["no_timestamps"] + 1, vocab_size=len(tokenizer))
    with contextlib.suppress(TypeError):  # not weak-referenceable: look up again next time
        _cache[tokenizer] = result
    return result


def language_id(tokenizer: Any, language: str) -> int:
    """The id of ``<|language|>`` in ``tokenizer``.

    Raises:
        ValueError: ``language`` is not one of this tokenizer's language tokens.
    """
    specials = special_tokens(tokenizer)
    token_id = _lookup(tokenizer, f"<|{language}|>")
    if token_id is None or not specials.sot < token_id < specials.translate:
        raise ValueError(f"unknown Whisper language {language!r}")
    return token_id
