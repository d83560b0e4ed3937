"""Table-driven normalizer tests, one table per preset (in the style of openai/whisper's)."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whisper_ja.text import NORMALIZERS, normalize
from whisper_ja.text.normalize import get_normalizer
from whisper_ja.text.score import ScoreConfig

DEFAULT_CASES = [
    # width folding (NFKC) and case
    ("ＡＢＣ１２３", "abc百二十三"),
    ("ｘｙｚ", "xyz"),
    ("ｺｰﾋｰ", "コーヒー"),
    ("Ｈｅｌｌｏ World", "helloworld"),
    # Japanese and ASCII punctuation, symbols
    ("今日は、晴れ。", "今日は晴れ"),
    ("「本当」『はい』！？", "本当はい"),
    ("東京・大阪〜名古屋…", "東京大阪名古屋"),
    ('Hello, world! (test) "q" \'x\'', "helloworldtestqx"),
    ("♪ラララ♪", "ラララ"),
    # all whitespace, including the ideographic space, tabs and newlines
    ("今日 は\u3000晴れ\tです\n", "今日は晴れです"),
    # the long vowel mark is a letter and stays; iteration mark too
    ("コーヒー", "コーヒー"),
    ("時々", "時々"),
    # numbers: one canonical form (kanji numerals)
    ("2005年7月14日", "二千五年七月十四日"),
    ("２００５年７月１４日", "二千五年七月十四日"),
    ("二千五年七月十四日", "二千五年七月十四日"),
    ("二〇〇五年", "二千五年"),
    ("3,480円", "三千四百八十円"),
    ("３，４８０円", "三千四百八十円"),
    ("三千四百八十円", "三千四百八十円"),
    ("十", "十"),
    ("10", "十"),
    ("１０", "十"),
    ("1万2千円", "一万二千円"),
    ("12000円", "一万二千円"),
    ("3.5キロ", "三点五キロ"),
    ("三点五キロ", "三点五キロ"),
    ("0120", "〇一二〇"),
    ("1,2,3", "百二十三"),  # punctuation goes first, so the same as "一、二、三"
    ("一、二、三", "百二十三"),
    # words that contain a numeral stay as written
    ("一緒に千葉へ", "一緒に千葉へ"),
    ("万一", "万一"),
    ("億万長者", "億万長者"),
    # hiragana and katakana are not folded into each other (that is the reading CER's job)
    ("りんご", "りんご"),
    ("リンゴ", "リンゴ"),
    # a bare voicing mark carries nothing
    ("゛が", "が"),
    ("", ""),
    ("、。！", ""),
]


@pytest.mark.parametrize(("text", "expected"), DEFAULT_CASES)
def test_default(text: str, expected: str) -> None:
    assert normalize(text) == expected
    assert normalize(text, "default") == expected


@pytest.mark.parametrize(("a", "b"), [
    ("10", "十"), ("10", "１０"), ("2005年", "二千五年"), ("3,480円", "三千四百八十円"),
    ("１万２千", "一万二千"),
])
def test_default_number_spellings_agree(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)


def test_default_is_idempotent() -> None:
    for text, _ in DEFAULT_CASES:
        once = normalize(text)
        assert normalize(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="〇一二三四五十百千万0123456789０１.,、。点 　ー々あアｱ東京ＡBc「」!?%",
               max_size=16))
def test_default_is_idempotent_on_random_text(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


REAZONSPEECH_CASES = [
    ("今日は、晴れ。", "今日は晴れ"),
    ("「本当？」『はい！』", "本当はい"),
    ("Why?! No,", "Why No"),
    # only full-width letters and digits are folded; no lower-casing, no NFKC
    ("ＡＢＣ", "ABC"),
    ("ｺｰﾋｰ", "ｺｰﾋｰ"),
    # numbers are spelled as Japanese words (num2words)
    ("2005年", "二千五年"),
    ("３，４８０円", "三千四百八十円"),
    ("3.5キロ", "三点五キロ"),
    # spaces and other punctuation stay
    ("hello world", "hello world"),
    ("東京・大阪", "東京・大阪"),
    ("コーヒー", "コーヒー"),
]


@pytest.mark.parametrize(("text", "expected"), REAZONSPEECH_CASES)
def test_reazonspeech(text: str, expected: str) -> None:
    assert normalize(text, "reazonspeech") == expected


KOTOBA_CASES = [
    ("今日は、晴れ。", "今日は晴れ"),
    ("ＡＢＣ１２３", "abc123"),
    # no number canonicalization
    ("2005年", "2005年"),
    ("二千五年", "二千五年"),
    # bracketed text removed (Whisper's BasicTextNormalizer), full-width brackets become spaces
    ("[音楽]こんにちは", "こんにちは"),
    ("(笑)こんにちは", "こんにちは"),
    ("こんにちは（笑）", "こんにちは笑"),
    ("今日 は 晴れ", "今日は晴れ"),
    ("コーヒー", "コーヒー"),
]


@pytest.mark.parametrize(("text", "expected"), KOTOBA_CASES)
def test_kotoba(text: str, expected: str) -> None:
    assert normalize(text, "kotoba") == expected


PAPER_CASES = [
    ("今日は晴れです。", "今日 は 晴れ です"),
    ("今日 は 晴れ です", "今日 は 晴れ です"),
    ("東京、大阪。", "東京 大阪"),
]


@pytest.mark.parametrize(("text", "expected"), PAPER_CASES)
def test_paper(text: str, expected: str) -> None:
    assert normalize(text, "paper") == expected


def test_paper_reproduces_seed_code_quirks() -> None:
    # ー becomes an ASCII hyphen and ゛ a double quote, as in the seed code's table.
    coffee = normalize("コーヒー", "paper")
    assert "ー" not in coffee and "-" in coffee
    assert normalize("゛", "paper") == '"'
    # Only 、 and 。 are removed; other punctuation survives as words.
    assert "!" in normalize("すごい！", "paper")


def test_presets_registry_and_config_choices_agree() -> None:
    hints = typing.get_type_hints(ScoreConfig)
    assert set(typing.get_args(hints["normalizer"])) == set(NORMALIZERS)
    assert NORMALIZERS["paper"].word_split and not NORMALIZERS["default"].word_split


def test_unknown_preset_and_custom_function() -> None:
    with pytest.raises(ValueError, match="unknown normalizer 'nope'"):
        normalize("x", "nope")
    assert normalize("AbC", str.lower) == "abc"
    assert get_normalizer(str.upper)("a") == "A"
