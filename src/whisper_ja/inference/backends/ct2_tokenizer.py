"""faster-whisper's tokenizer under the names whisper-ja's vocabulary lookups read."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["TokenizerView"]

_TIMESTAMP = re.compile(r"<\|\d+\.\d\d\|>")


class TokenizerView:
    """faster-whisper's ``tokenizers.Tokenizer`` under the transformers names the lookups read.

    :func:`~whisper_ja.inference.backend.vocabulary_of` asks ``convert_tokens_to_ids``,
    ``convert_ids_to_tokens``, ``unk_token_id``, ``len()`` and ``encode``; the raw tokenizer
    has ``token_to_id`` (None for a missing token) and ``id_to_token``. A timestamp token the
    tokenizer lacks is looked up in the model's own vocabulary (``vocabulary.txt`` / ``.json``,
    written by CTranslate2's converter): stock faster-whisper exports ship a
    ``tokenizer.json`` without the timestamp tokens that their model generates.

    Args:
        tokenizer: faster-whisper's ``hf_tokenizer``.
        model_vocabulary: The model's tokens by id (empty when the export has no file).
    """

    unk_token_id = None  # the raw tokenizer answers None, never an unknown id

    def __init__(self, tokenizer: Any, model_vocabulary: Sequence[str] = ()) -> None:
        self._tokenizer = tokenizer
        self._known = int(tokenizer.get_vocab_size(with_added_tokens=True))
        self._extra = list(model_vocabulary)
        self._extra_ids = {token: i for i, token in enumerate(self._extra)
                           if i >= self._known and _TIMESTAMP.fullmatch(token)}

    def convert_tokens_to_ids(self, token: str) -> int | None:
        """The id of ``token``, or None."""
        found = self._tokenizer.token_to_id(token)
        return self._extra_ids.get(token) if found is None else int(found)

    def convert_ids_to_tokens(self, token_id: int) -> str | None:
        """The token of ``token_id``, or None."""
        found = self._tokenizer.id_to_token(token_id)
        if found is None and self._known <= token_id < len(self._extra):
            token = self._extra[token_id]
            return token if token in self._extra_ids else None
        return None if found is None else str(found)

    def __len__(self) -> int:
        return max(self._known, len(self._extra))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Text ids of ``text``."""
        encoded = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return [int(t) for t in encoded.ids]
