"""Kana readings, for a CER that ignores kanji/kana spelling variants.

Japanese may write one word in kanji, hiragana or katakana (東京 / とうきょう / トウキョウ,
林檎 / りんご / リンゴ). The surface CER counts such variants as errors though they sound the
same; the reading CER compares pronunciations instead, answering the seed paper's open question
of how much of the CER is spelling.

Pipeline of :func:`to_reading`:
    1. The chosen preset normalizer (``default``: NFKC, no punctuation/whitespace, numbers as
       kanji numerals).
    2. Numbers as kanji numerals (:func:`whisper_ja.text.numbers.to_kanji`; a no-op after
       ``default``), so every preset's numbers are read one way.
    3. ``pyopenjtalk.g2p(text, kana=True)``: pronunciation katakana with long vowels as ``ー``
       (とうきょう → トーキョー). Open JTalk is the reader that reads digits and counters right.
    4. Anything that is not katakana or ``ー`` (pause marks ``、``, leftover symbols) removed.

The reading depends on context (the reader picks one reading per word), so a wrong kanji that
happens to share the sound is not an error here: that is the point.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from whisper_ja.text.normalize import NormalizerLike, get_normalizer
from whisper_ja.text.numbers import to_kanji

__all__ = ["kana_reading", "to_reading"]

# Katakana block letters and the long vowel mark; everything else g2p returns is dropped.
_NOT_KANA = re.compile(r"[^\u30a1-\u30fa\u30fc]")


@lru_cache(maxsize=1)
def _openjtalk() -> Any:
    # Lazy: pyopenjtalk loads its dictionary on import, which takes a while.
    import pyopenjtalk

    return pyopenjtalk


@lru_cache(maxsize=65536)
def kana_reading(text: str) -> str:
    """Pronunciation katakana of ``text`` (no normalization; cached, texts repeat in bootstraps).

    Example:
        >>> kana_reading("東京")
        'トーキョー'
    """
    if not text.strip():
        return ""
    kana = str(_openjtalk().g2p(text, kana=True))
    return _NOT_KANA.sub("", kana)


def to_reading(text: str, normalizer: NormalizerLike = "default") -> str:
    """Normalize ``text`` with a preset, spell numbers in kanji, and read it as katakana.

    Args:
        text: Raw reference or hypothesis.
        normalizer: Preset name or function applied first.

    Returns:
        Katakana (with ``ー``) only; empty for empty text.

    Example:
        >>> to_reading("２００５年、東京へ。") == to_reading("にせんごねんとうきょうへ")
        True
    """
    normalized = get_normalizer(normalizer)(text)
    # Word spaces (paper preset) carry no sound.
    return kana_reading(to_kanji(normalized.replace(" ", "")))
