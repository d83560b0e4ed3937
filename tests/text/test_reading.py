from __future__ import annotations

import pytest

from whisper_ja.text import cer, reading_cer, to_reading


@pytest.mark.parametrize(("ref", "hyp"), [
    ("東京", "とうきょう"),          # kanji vs hiragana
    ("東京", "トウキョウ"),          # kanji vs katakana
    ("林檎を食べた", "りんごを食べた"),
    ("りんご", "リンゴ"),            # hiragana vs katakana
    ("2005年7月14日", "二千五年七月十四日"),
    ("3,480円", "さんぜんよんひゃくはちじゅうえん"),
    ("一緒に行こう", "いっしょにいこう"),  # numeral inside a word still reads right
    ("「こんにちは」。", "こんにちは"),
])
def test_spelling_variants_are_not_reading_errors(ref: str, hyp: str) -> None:
    assert reading_cer([ref], [hyp]).errors == 0


def test_reading_cer_zero_where_cer_is_not() -> None:
    assert reading_cer(["東京"], ["とうきょう"]).rate == 0.0
    assert cer(["東京"], ["とうきょう"]).rate > 0


def test_different_words_are_reading_errors() -> None:
    assert reading_cer(["東京"], ["京都"]).errors > 0


def test_reading_is_katakana_only() -> None:
    reading = to_reading("「東京」、ＡＢＣ！2005年")
    assert reading
    assert all("\u30a1" <= c <= "\u30fa" or c == "ー" for c in reading)
    assert to_reading("") == "" and to_reading("。、！") == ""


def test_paper_preset_spaces_do_not_change_readings() -> None:
    assert to_reading("今日は晴れです", "paper") == to_reading("今日は晴れです")
