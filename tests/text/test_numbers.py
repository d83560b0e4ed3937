from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kanjize import number2kanji

from whisper_ja.text.numbers import to_arabic, to_kanji


@pytest.mark.parametrize(("text", "expected"), [
    ("二千五年七月十四日", "2005年7月14日"),
    ("二〇〇五", "2005"),
    ("〇一二〇", "0120"),  # positional kanji keep leading zeros
    ("一二三", "123"),
    ("3,480円", "3480円"),
    ("12,345,678", "12345678"),
    ("1,2,3", "1,2,3"),
    ("1万2千", "12000"),
    ("百二十三万四千五百六十七", "1234567"),
    ("三点五", "3.5"),
    ("万一", "万1"),
    ("十十", "十十"),  # does not parse: left unchanged
    ("千葉", "1000葉"),  # accepted conflation, the same on both sides
    ("今日は晴れ", "今日は晴れ"),
])
def test_to_arabic(text: str, expected: str) -> None:
    assert to_arabic(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("2005年", "二千五年"),
    ("二〇〇五年", "二千五年"),
    ("3480円", "三千四百八十円"),
    ("3.5キロ", "三点五キロ"),
    ("0120", "〇一二〇"),
    ("〇一二〇", "〇一二〇"),
    ("一千", "千"),
    ("一緒", "一緒"),  # words with a numeral round-trip
    ("千葉", "千葉"),
])
def test_to_kanji(text: str, expected: str) -> None:
    assert to_kanji(text) == expected


@given(st.integers(min_value=0, max_value=10**12))
def test_kanji_and_arabic_round_trip(n: int) -> None:
    assert to_arabic(str(number2kanji(n))) == str(n)
    assert to_arabic(f"{n:,}") == str(n)
    assert to_arabic(to_kanji(str(n))) == str(n)


@given(st.text(alphabet="〇零一二三四五六七八九十百千万億兆0123456789点.,円年", max_size=12))
def test_never_crashes_on_numeral_soup(text: str) -> None:
    assert isinstance(to_arabic(text), str)
    assert isinstance(to_kanji(text), str)


@given(st.text(alphabet="〇零一二三四五六七八九十百千万億兆0123456789点.,円年葉緒", max_size=12))
def test_to_kanji_is_idempotent(text: str) -> None:
    once = to_kanji(text)
    assert to_kanji(once) == once


def test_numbers_too_long_for_kanji_numerals_are_spelled_digit_by_digit() -> None:
    # A looping model can write 80 digits; kanji numerals end at 無量大数 (72 digits).
    digits = "12" * 40
    spelled = to_kanji(digits)
    assert spelled == "一二" * 40 and to_kanji(spelled) == spelled
    assert to_kanji("9" * 72) == str(number2kanji(int("9" * 72)))
