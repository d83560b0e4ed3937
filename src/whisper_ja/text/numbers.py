"""One canonical spelling for numbers, so that 10, 十 and １０ are not counted as errors.

Japanese writes the same number several ways: arabic digits (``2005``, ``3,480``), kanji
numerals with units (``二千五``, ``三千四百八十``), positional kanji (``二〇〇五``) and mixtures
(``1万2千``). A recognizer may pick any of them, so scoring must first map every spelling to one.

:func:`to_arabic` is the canonical form of the ``default`` normalizer (digits are short and
unambiguous). :func:`to_kanji` renders digits as kanji numerals for :mod:`.reading`, because it
round-trips words that merely contain a numeral: ``一緒`` → ``1緒`` → ``一緒``, and the reader
(Open JTalk) then reads ``イッショ``, not ``イチチョ``.

Rules of :func:`to_arabic` (kanji numerals are parsed by ``kanjize``):

1. Thousands separators between digits are dropped: ``3,480`` → ``3480`` (only a comma followed
   by exactly three digits, so a list such as ``1,2,3`` is left alone).
2. A run of numeral characters (``0-9 〇 零 一 … 九 十 百 千 万 億 兆``) that holds at least one
   kanji numeral is read as one number: ``二千五`` → ``2005``, ``二〇〇五`` → ``2005``,
   ``1万2千`` → ``12000``, ``十四`` → ``14``. Runs of digits only are kept as written.
3. Leading ``万 億 兆`` are not numbers on their own (``万一``, ``億万長者``) and stay text.
4. A decimal part ``点`` + kanji digits (``三点五``) becomes ``.`` + digits (``3.5``).
5. A run that does not parse (e.g. ``十十``) is left unchanged.

Known, accepted conflations (the same on both sides, so they cost nothing): words containing a
numeral change spelling (``一緒`` → ``1緒``, ``十分`` (enough) and ``10分`` (ten minutes) become
the same string).
"""

from __future__ import annotations

import re

from kanjize import kanji2number, number2kanji

__all__ = ["KANJI_DIGITS", "to_arabic", "to_kanji"]

KANJI_DIGITS = "〇零一二三四五六七八九"
"""Kanji that stand for one digit (〇 and 零 both zero)."""
_UNITS = "十百千万億兆"
_LEADING_UNITS = "万億兆"
_DIGIT_VALUE = {c: str(i) for i, c in enumerate("〇一二三四五六七八九")} | {"零": "0"}

# A number: numeral characters, optionally a decimal part after 点 or '.'.
_RUN = re.compile(
    rf"[0-9{KANJI_DIGITS}{_UNITS}]+(?:[.点][0-9{KANJI_DIGITS}]+)?"
)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ARABIC_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _integer_to_arabic(run: str) -> str | None:
    """Arabic digits of a kanji (or mixed) integer run, or None when it does not parse."""
    if run.isdigit() and run.isascii():
        return run
    try:
        value = kanji2number(run)
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return str(value)


def _convert_run(match: re.Match[str]) -> str:
    text = match.group(0)
    # Units that cannot start a number (万一, 億万長者) stay text; the rest is converted.
    lead = len(text) - len(text.lstrip(_LEADING_UNITS))
    prefix, run = text[:lead], text[lead:]
    if not run:
        return text
    integer, sep, fraction = run.partition("点") if "点" in run else run.partition(".")
    if not integer:
        return text
    arabic = _integer_to_arabic(integer)
    if arabic is None:
        return text
    if sep:
        if not all(c.isdigit() or c in _DIGIT_VALUE for c in fraction):
            return text
        digits = "".join(_DIGIT_VALUE.get(c, c) for c in fraction)
        return f"{prefix}{arabic}.{digits}"
    return prefix + arabic


def to_arabic(text: str) -> str:
    """Rewrite every number in ``text`` with arabic digits (see the module rules).

    Args:
        text: Text after NFKC (full-width digits already folded to ASCII).

    Returns:
        The text with kanji and mixed numerals as arabic digits and thousands separators
        removed; everything else unchanged.

    Example:
        >>> to_arabic("二千五年七月十四日に3,480円")
        '2005年7月14日に3480円'
    """
    text = _THOUSANDS.sub("", text)
    return _RUN.sub(_convert_run, text)


def _arabic_to_kanji(match: re.Match[str]) -> str:
    integer, _, fraction = match.group(0).partition(".")
    # Keep leading zeros as spoken digits (電話番号 0120 → 〇一二〇) rather than dropping them.
    if len(integer) > 1 and integer.startswith("0"):
        kanji = "".join("〇一二三四五六七八九"[int(d)] for d in integer)
    else:
        kanji = number2kanji(int(integer))
    if fraction:
        kanji += "点" + "".join("〇一二三四五六七八九"[int(d)] for d in fraction)
    return str(kanji)


def to_kanji(text: str) -> str:
    """Rewrite every number in ``text`` as kanji numerals (``2005`` → ``二千五``).

    Numbers are first brought to the canonical arabic form (:func:`to_arabic`), so any
    spelling ends up as the same kanji: ``二〇〇五`` and ``2005`` both become ``二千五``, while
    a word such as ``一緒`` round-trips unchanged.

    Args:
        text: Text after NFKC.

    Returns:
        The text with all numbers as kanji numerals (decimals as ``三点五``).
    """
    return _ARABIC_NUMBER.sub(_arabic_to_kanji, to_arabic(text))
