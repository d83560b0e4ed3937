"""One canonical spelling for numbers, so that 10, 十 and １０ are not counted as errors.

Japanese writes the same number several ways: arabic digits (``2005``, ``3,480``), kanji
numerals with units (``二千五``, ``三千四百八十``), positional kanji (``二〇〇五``) and mixtures
(``1万2千``). A recognizer may pick any of them, so scoring first maps every spelling to one.

The canonical form is KANJI numerals (:func:`to_kanji`), chosen over digits because kanji
numerals also live inside ordinary words (一緒, 一人, 十分, 千葉, 統一): digits would rewrite
those words (千葉 → 1000葉, two characters becoming five and inflating the reference length),
while the kanji form leaves them exactly as written and only respells numbers written in
digits. It also gives Open JTalk (:mod:`.reading`) text it reads right.

Rules of :func:`to_arabic` (kanji numerals with units are parsed by ``kanjize``):

1. Thousands separators between digits are dropped: ``3,480`` → ``3480`` (only a comma followed
   by exactly three digits, so a list such as ``1,2,3`` is left alone).
2. A run of numeral characters (``0-9 〇 零 一 … 九 十 百 千 万 億 兆``) that holds at least one
   kanji numeral is read as one number: ``二千五`` → ``2005``, ``1万2千`` → ``12000``,
   ``十四`` → ``14``. Runs of digit kanji without units are positional, leading zeros kept:
   ``二〇〇五`` → ``2005``, ``〇一二〇`` → ``0120``. Runs of arabic digits stay as written.
3. Leading ``万 億 兆`` are not numbers on their own (``万一``, ``億万長者``) and stay text.
4. A decimal part ``点`` + kanji digits (``三点五``) becomes ``.`` + digits (``3.5``).
5. A run that does not parse (e.g. ``十十``) is left unchanged (:func:`to_kanji` still spells
   its arabic digits one by one).

:func:`to_kanji` applies :func:`to_arabic`, then writes every digit number with kanjize's
``number2kanji`` (``2005`` → ``二千五``, ``12000`` → ``一万二千``), numbers with leading zeros
digit by digit (``0120`` → ``〇一二〇``) and decimals as ``三点五``. A kanji number comes back in
kanjize's spelling (``二〇〇五`` → ``二千五``, ``一千`` → ``千``); a word round-trips unchanged.
One accepted conflation, the same on both sides so it costs nothing: ``十分`` (enough) and
``10分`` (ten minutes) become the same string.
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


def _integer_to_arabic(run: str) -> str | None:
    """Arabic digits of a kanji (or mixed) integer run, or None when it does not parse."""
    if run.isdigit() and run.isascii():
        return run
    if all(c in _DIGIT_VALUE for c in run):
        # Positional (二〇〇五, 〇一二〇): digit by digit, so leading zeros survive.
        return "".join(_DIGIT_VALUE[c] for c in run)
    try:
        value = kanji2number(run)
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return str(value)


def _parse_run(text: str) -> tuple[str, str, str] | None:
    """``(prefix, integer digits, fraction digits)`` of a numeral run, None if not a number."""
    # Units that cannot start a number (万一, 億万長者) stay text; the rest is converted.
    lead = len(text) - len(text.lstrip(_LEADING_UNITS))
    prefix, run = text[:lead], text[lead:]
    integer, sep, fraction = run.partition("点") if "点" in run else run.partition(".")
    if not integer:
        return None
    arabic = _integer_to_arabic(integer)
    if arabic is None:
        return None
    if sep and not all(c.isdigit() or c in _DIGIT_VALUE for c in fraction):
        return None
    return prefix, arabic, "".join(_DIGIT_VALUE.get(c, c) for c in fraction)


def _arabic_run(match: re.Match[str]) -> str:
    parsed = _parse_run(match.group(0))
    if parsed is None:
        return match.group(0)
    prefix, integer, fraction = parsed
    return f"{prefix}{integer}.{fraction}" if fraction else prefix + integer


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
    return _RUN.sub(_arabic_run, _THOUSANDS.sub("", text))


MAX_NUMERAL_DIGITS = 72
"""Longest integer kanji numerals can write (up to 無量大数, 10^68 x 9999)."""


def _spell_digits(digits: str) -> str:
    return "".join("〇一二三四五六七八九"[int(d)] for d in digits)


def _kanji_run(match: re.Match[str]) -> str:
    parsed = _parse_run(match.group(0))
    if parsed is None:
        # Not a number (十十, 0億億): its digits are still spelled one by one, so that the
        # output holds no arabic digit and a second pass changes nothing.
        return re.sub(r"[0-9]", lambda m: _spell_digits(m.group(0)), match.group(0))
    prefix, integer, fraction = parsed
    # Leading zeros are kept as spoken digits (0120 → 〇一二〇), and zero is always 〇
    # (number2kanji says 零), as in positional and decimal digits, so that 0.0 and 〇点〇 meet.
    # Past 無量大数 (10^68, 72 digits) kanjize has no unit left: such runs (a looping model
    # writes them) are spelled digit by digit, as leading zeros are.
    spelled = integer.startswith("0") or len(integer) > MAX_NUMERAL_DIGITS
    kanji = _spell_digits(integer) if spelled else str(number2kanji(int(integer)))
    if fraction:
        kanji += "点" + _spell_digits(fraction)
    return prefix + kanji


def to_kanji(text: str) -> str:
    """Rewrite every number in ``text`` as kanji numerals (``2005`` → ``二千五``).

    Each number is read as :func:`to_arabic` reads it and spelled in kanji, so any spelling
    ends up as the same kanji: ``二〇〇五`` and ``2005`` both become ``二千五``, while a word
    such as ``一緒`` round-trips unchanged. Numbers are converted one run at a time, so two
    neighbouring numbers never merge into one.

    Args:
        text: Text after NFKC.

    Returns:
        The text with all numbers as kanji numerals (decimals as ``三点五``).

    Example:
        >>> to_kanji("2005年に3,480円") == to_kanji("二〇〇五年に3480円")
        True
    """
    return _RUN.sub(_kanji_run, _THOUSANDS.sub("", text))
