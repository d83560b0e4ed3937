r"""Text normalizers with named presets, each documented rule by rule.

Scores are only comparable when both sides were normalized the same way, so every score in
whisper-ja names its preset. Presets:

``default`` (use this): whisper-ja's own, for Japanese CER/WER.
    1. Unicode NFKC: full-width ASCII letters/digits → half-width (``ＡＢＣ１２`` → ``ABC12``),
       half-width katakana → full-width (``ｺｰﾋｰ`` → ``コーヒー``), composed kana.
    2. Latin letters lower-cased (``ABC`` → ``abc``).
    3. All whitespace removed (ASCII, ideographic ``U+3000``, tabs, newlines): Japanese has no
       word spaces, so spaces (e.g. MeCab-split text) must never count as characters.
    4. Numbers in one canonical form, kanji numerals (:func:`whisper_ja.text.numbers.to_kanji`):
       ``十`` = ``10`` = ``１０``, ``2005年`` = ``二〇〇五年`` = ``二千五年``, ``3,480円`` =
       ``三千四百八十円``, ``3.5`` = ``三点五``. Words containing a numeral (一緒, 千葉) are
       left as written.
    5. Punctuation and symbols removed (Unicode categories P* and S*: ``、。「」『』！？・…〜``,
       ASCII ``.,!?"'()``, ``%¥♪★~``), before rule 4 reads the numbers (so ``3,480`` is
       ``3480``), except a decimal point between two digits (``3.5`` → ``三点五``).
    6. Voicing marks left alone by NFKC (a bare ``゛``/``゜`` becomes a combining mark with no
       kana to join) removed.
    7. Kept as characters: the long vowel mark ``ー`` (a letter, Lm), ``々``, kana as written
       (hiragana/katakana variants are a matter for the reading CER, see :mod:`.reading`).

``reazonspeech``: ReazonSpeech's published CER normalizer, to compare with its tables.
    1. Delete ``、。「」『』，,？！!‼?⁉``.
    2. Full-width ``ａ-ｚ Ａ-Ｚ ０-９`` → half-width (nothing else, no NFKC).
    3. Every number ``\d+\.?\d*`` spelled as Japanese words with ``num2words(lang="ja")``
       (``2005`` → ``二千五``).
    Spaces are kept (they count). ReazonSpeech averages per-utterance CER; ``whisper-ja score``
    reports that mean next to the corpus-level CER.

``kotoba``: kotoba-whisper's evaluation: Whisper's ``BasicTextNormalizer`` (lower-case, text in
    ``[]``/``<>``/``()`` removed, NFKC, every mark/symbol/punctuation (M*, S*, P*) → space,
    whitespace collapsed), then all spaces removed.

``paper``: the seed paper's code (tokyo_whisperers ``src/metrics.py``), ONLY to reproduce its
    numbers; it is flawed and never the default.
    1. Its full-width → half-width table, which also maps ``ー`` → ``-``, ``゛`` → ``"`` and
       ``'`` → a backquote.
    2. Delete ``、`` and ``。`` (no other punctuation), delete whitespace.
    3. Split into words with MeCab + unidic-lite (its mecab-python3 + unidic-lite; here the same
       tagger and dictionary through fugashi) joined by single spaces, so the
       CER counts those spaces as characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from num2words import num2words
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from whisper_ja.text.numbers import to_kanji

__all__ = [
    "NORMALIZERS",
    "Normalizer",
    "NormalizerLike",
    "get_normalizer",
    "normalize",
    "tagger",
]


@dataclass(frozen=True)
class Normalizer:
    """A named normalization preset.

    Attributes:
        name: Preset name (``default``, ``reazonspeech``, ``kotoba``, ``paper``).
        function: The text → text function.
        summary: One line on what the preset is for.
        word_split: True when the output is already split into words by spaces (``paper``);
            WER then splits on spaces instead of re-tokenizing.
    """

    name: str
    function: Callable[[str], str]
    summary: str
    word_split: bool = False

    def __call__(self, text: str) -> str:
        """Normalize one string."""
        return self.function(text)


NormalizerLike = str | Normalizer | Callable[[str], str]
"""A preset name, a :class:`Normalizer`, or any text → text function."""


@cache
def tagger() -> Any:
    """The shared fugashi (MeCab) tagger with unidic-lite, created once (it is slow to load)."""
    # Imported here, not at the top: MeCab loads its dictionary; only word splitting needs it.
    import fugashi

    return fugashi.Tagger()


# --- default -------------------------------------------------------------------------------
_WHITESPACE = re.compile(r"\s+")


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


# A decimal number: one point between digits, not part of a dotted chain (2024.1.5, 1.2.3).
_DECIMAL = re.compile(r"(?<!\d\.)(?<!\d)\d+(\.)\d+(?!\.\d)")


def _remove_punctuation(text: str, keep_decimal_point: bool = False) -> str:
    # 3.5 must stay apart from 35 until numbers are spelled; other points go.
    keep = {m.start(1) for m in _DECIMAL.finditer(text)} if keep_decimal_point else set()
    return "".join(c for i, c in enumerate(text)
                   if i in keep or unicodedata.category(c)[0] not in "PS")


# Combining (han)dakuten: NFKC merges them into a preceding kana; any left over stand alone.
_ORPHAN_VOICING = re.compile("[\u3099\u309a]")


def _default(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = _ORPHAN_VOICING.sub("", text)
    text = _WHITESPACE.sub("", text)
    # Punctuation goes before numbers are read, so that "1,2,3" and "一、二、三" give the
    # same digit run; a decimal point survives until to_kanji spells it 点. A last pass drops
    # any point that was not between two digits of one number.
    text = _remove_punctuation(text, keep_decimal_point=True)
    return _remove_punctuation(to_kanji(text))


# --- reazonspeech --------------------------------------------------------------------------
# Published set (reazonspeech evaluation code); ‼ and ⁉ are included because the published
# string shows "!!" and "!?" as single characters in some copies.
_REAZON_PUNCT = {ord(c): "" for c in "、。「」『』，,？！!‼?⁉"}
_REAZON_ZEN2HAN = str.maketrans(
    "ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ０１２３４５６７８９",
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
)
# ASCII digits only: Python's \d would also match other scripts' digits.
_REAZON_NUMBER = re.compile(r"[0-9]+\.?[0-9]*")


def _reazonspeech(text: str) -> str:

    text = text.translate(_REAZON_PUNCT).translate(_REAZON_ZEN2HAN)
    return _REAZON_NUMBER.sub(lambda m: str(num2words(m.group(0), lang="ja")), text)


# --- kotoba --------------------------------------------------------------------------------
@cache
def _basic_text_normalizer() -> Callable[[str], str]:
    # Imported lazily: transformers is slow to import and only this preset needs it.

    normalizer: Callable[[str], str] = BasicTextNormalizer()
    return normalizer


def _kotoba(text: str) -> str:
    return _WHITESPACE.sub("", _basic_text_normalizer()(text))


# --- paper ---------------------------------------------------------------------------------
_PAPER_FULL = ("\u3000０１２３４５６７８９ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ"
               "ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ！゛＃＄％＆（）＊＋ー／：；〈＝〉？＠［］＾＿'｛｜｝～")
_PAPER_HALF = (" 0123456789abcdefghijklmnopqrstuvwxyz"
               "ABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&()*+-/:;<=>?@[]^_`{|}~")
_PAPER_TABLE = str.maketrans(_PAPER_FULL, _PAPER_HALF)


def _paper(text: str) -> str:
    text = text.translate(_PAPER_TABLE)
    text = re.sub(r"[、。]", "", text)
    text = _WHITESPACE.sub("", text.strip())
    return " ".join(word.surface for word in tagger()(text))


NORMALIZERS: dict[str, Normalizer] = {
    "default": Normalizer("default", _default,
                          "NFKC, lower case, no whitespace/punctuation, numbers in kanji"),
    "reazonspeech": Normalizer("reazonspeech", _reazonspeech,
                               "ReazonSpeech's CER normalizer (num2words, punctuation set)"),
    "kotoba": Normalizer("kotoba", _kotoba,
                         "kotoba-whisper: Whisper BasicTextNormalizer, spaces removed"),
    "paper": Normalizer("paper", _paper,
                        "seed paper's code: MeCab-split words, spaces counted (flawed)",
                        word_split=True),
}
"""The presets by name; see the module docstring for their rules."""


def get_normalizer(normalizer: NormalizerLike = "default") -> Normalizer:
    """Resolve a preset name, a :class:`Normalizer`, or a plain function to a :class:`Normalizer`.

    Raises:
        ValueError: ``normalizer`` is a name that is not a preset.
    """
    if isinstance(normalizer, Normalizer):
        return normalizer
    if isinstance(normalizer, str):
        if normalizer not in NORMALIZERS:
            raise ValueError(f"unknown normalizer {normalizer!r}; "
                             f"choose one of {', '.join(NORMALIZERS)}")
        return NORMALIZERS[normalizer]
    if callable(normalizer):
        return Normalizer(getattr(normalizer, "__name__", "custom"), normalizer, "user function")
    raise TypeError(f"normalizer must be a preset name or a function, got {normalizer!r}")


def normalize(text: str, preset: NormalizerLike = "default") -> str:
    """Normalize ``text`` with a named preset (see the module docstring for each rule).

    Args:
        text: Raw transcript or hypothesis.
        preset: ``default``, ``reazonspeech``, ``kotoba``, ``paper``, or a custom normalizer.

    Returns:
        The normalized text.

    Example:
        >>> normalize("「２００５年」、 3,480円！")
        '二千五年三千四百八十円'
    """
    return get_normalizer(preset)(text)
