"""Training-label width folding: what changes, and what must never change."""

from __future__ import annotations

import pytest

from whisper_ja.text.labels import LabelSettings, count_label_changes, fold_label

CHANGES = [
    ("１９９２年にガーター勲章を受章した。", "1992年にガーター勲章を受章した。", ("digits",)),
    ("合計金額は９９，２９１円です。", "合計金額は99,291円です。", ("digits", "punctuation")),
    ("３．５％増えた。", "3.5%増えた。", ("digits", "punctuation")),
    ("ＮＨＫのニュース", "NHKのニュース", ("latin",)),
    ("ＯＫ！？", "OK!?", ("latin", "punctuation")),
    ("（１）番", "(1)番", ("digits", "punctuation")),
    ("午後３：３０に", "午後3:30に", ("digits", "punctuation")),
    ("A＆B社", "A&B社", ("punctuation",)),
]

UNCHANGED = [
    "すごい！本当？",               # Japanese exclamation/question marks next to kana
    "全角カタカナ、漢字。「引用」",  # kana, kanji, Japanese punctuation
    "ｶﾀｶﾅ",                        # half-width katakana: a kana choice, left alone
    "1992年",                       # already half-width
    "十二月三日",                   # kanji numerals are a kanji choice
    "（笑）",                       # full-width brackets around kanji
    "",
]


@pytest.mark.parametrize(("text", "expected", "rules"), CHANGES)
def test_folds_digits_latin_and_their_punctuation(text: str, expected: str,
                                                  rules: tuple[str, ...]) -> None:
    result = fold_label(text)
    assert result.text == expected
    assert result.changed == rules


@pytest.mark.parametrize("text", UNCHANGED)
def test_never_touches_kana_kanji_or_japanese_punctuation(text: str) -> None:
    assert fold_label(text) == fold_label(text)  # pure
    assert fold_label(text).text == text
    assert fold_label(text).changed == ()


def test_each_rule_is_a_setting() -> None:
    only_latin = LabelSettings(digits=False, punctuation=False)
    assert fold_label("ＮＨＫ１９９２．", only_latin).text == "NHK１９９２．"
    off = LabelSettings(digits=False, latin=False, punctuation=False)
    assert fold_label("１９９２．ＮＨＫ", off).text == "１９９２．ＮＨＫ"
    assert off.enabled == ()


def test_counts_labels_changed_by_each_rule() -> None:
    texts = ["１９９２年", "ＮＨＫ", "３．５", "こんにちは"]
    folded, counts = count_label_changes(texts)
    assert folded == ["1992年", "NHK", "3.5", "こんにちは"]
    assert counts == {"digits": 2, "latin": 1, "punctuation": 1}
    _, none = count_label_changes(texts, LabelSettings(latin=False))
    assert none == {"digits": 2, "punctuation": 1}
