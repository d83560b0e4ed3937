from __future__ import annotations

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whisper_ja.text import ErrorCounts, cer, normalize, reading_cer, utterance_scores, wer
from whisper_ja.text.metrics import mean_rate, tokens, utterance_counts

# Random Japanese-looking text: hiragana, katakana (with ー), common kanji, digits, punctuation.
JA_ALPHABET = ("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよ"
               "らりるれろわをんがぎぐげござじずぜぞアイウエオカキクケコサシスセソタチツテトー"
               "日本語東京大阪今天気人会社学生先年月円一二三四五六七八九十百千万0123456789、。 ")
ja_text = st.text(alphabet=JA_ALPHABET, max_size=25)
ja_pairs = st.lists(st.tuples(ja_text, ja_text), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(ja_pairs)
def test_cer_agrees_with_jiwer(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    ours = cer(refs, hyps)
    ref_n, hyp_n = [normalize(r) for r in refs], [normalize(h) for h in hyps]
    if any(not r for r in ref_n):  # jiwer refuses empty references; our rule covers them
        return
    theirs = jiwer.process_characters(ref_n, hyp_n)
    assert (ours.substitutions, ours.deletions, ours.insertions, ours.hits) == (
        theirs.substitutions, theirs.deletions, theirs.insertions, theirs.hits)
    assert ours.rate == pytest.approx(jiwer.cer(ref_n, hyp_n))


@settings(max_examples=60, deadline=None)
@given(ja_pairs)
def test_wer_agrees_with_jiwer_on_the_same_words(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    ref_w = [" ".join(tokens(normalize(r))) for r in refs]
    hyp_w = [" ".join(tokens(normalize(h))) for h in hyps]
    if any(not r for r in ref_w):
        return
    ours = wer(refs, hyps)
    theirs = jiwer.process_words(ref_w, hyp_w)
    assert (ours.substitutions, ours.deletions, ours.insertions, ours.hits) == (
        theirs.substitutions, theirs.deletions, theirs.insertions, theirs.hits)


def test_corpus_level_is_total_edits_over_total_length() -> None:
    refs = ["あいうえお", "か"]
    hyps = ["あいうえお", "き"]
    total = cer(refs, hyps)
    assert total.reference_length == 6 and total.errors == 1
    assert total.rate == pytest.approx(1 / 6)
    # the mean of per-utterance rates weighs the short utterance much more
    assert mean_rate(utterance_counts(refs, hyps)) == pytest.approx(0.5)


def test_edit_breakdown() -> None:
    counts = cer(["とうきょう"], ["ときょうだ"])  # う deleted, だ inserted
    assert (counts.substitutions, counts.deletions, counts.insertions) == (0, 1, 1)
    assert counts.hits == 4 and counts.reference_length == 5
    sub = cer(["東京"], ["東今"])
    assert (sub.substitutions, sub.deletions, sub.insertions) == (1, 0, 0)


def test_number_spellings_are_not_errors_in_default() -> None:
    refs = ["2005年7月14日に3,480円払った", "十人"]
    hyps = ["二千五年七月十四日に三千四百八十円払った", "１０人"]
    assert cer(refs, hyps).errors == 0
    assert cer(refs, hyps, "kotoba").errors > 0


def test_long_vowel_mark_counts_as_a_character() -> None:
    counts = cer(["コーヒー"], ["コーヒ"])
    assert counts.reference_length == 4 and counts.deletions == 1


SPACED_HYP = "今日 は とても 良い 天気 です"
UNSPACED_REF = "今日はとても良い天気です。"


def test_default_cer_does_not_count_spaces() -> None:
    # the seed paper's flaw: MeCab-split text scored with its spaces as characters
    assert cer([UNSPACED_REF], [SPACED_HYP]).errors == 0
    # scoring the raw strings (spaces kept, as the flawed code effectively did) counts them
    raw = cer([UNSPACED_REF.rstrip("。")], [SPACED_HYP], normalizer=lambda t: t)
    assert raw.insertions == 5 and raw.rate > 0
    # the paper preset puts MeCab spaces into both sides: they inflate the reference length ...
    paper = cer([UNSPACED_REF], [SPACED_HYP], "paper")
    default = cer([UNSPACED_REF], [SPACED_HYP])
    assert paper.reference_length == default.reference_length + 5


@pytest.mark.parametrize(("ref", "hyp", "default_errors", "paper_errors"), [
    # ... and a one-character mistake that changes the word split costs extra "space" edits
    ("今日はとても良い天気です", "今日はとても良い天気でした", 2, 3),
    # ー is a hyphen word in the paper's table: a missing ー costs a space as well
    ("私は毎朝コーヒーを飲みます", "私は毎朝コーヒを飲みます", 1, 2),
])
def test_paper_counts_space_edits(ref: str, hyp: str, default_errors: int,
                                  paper_errors: int) -> None:
    assert cer([ref], [hyp]).errors == default_errors
    assert cer([ref], [hyp], "paper").errors == paper_errors


def test_paper_wer_splits_on_its_own_spaces() -> None:
    counts = wer(["今日は晴れです"], ["今日は晴れでした"], "paper")
    assert counts.reference_length == len(normalize("今日は晴れです", "paper").split())


@pytest.mark.parametrize(("ref", "hyp", "rate", "breakdown"), [
    ("", "", 0.0, (0, 0, 0, 0)),          # both empty: perfect
    ("", "あいう", 1.0, (0, 0, 3, 0)),     # empty reference, text hypothesised: 1.0, finite
    ("あいう", "", 1.0, (0, 3, 0, 3)),     # empty hypothesis: all deletions
    ("。、", "！", 0.0, (0, 0, 0, 0)),     # empty after normalization
])
def test_empty_texts_are_defined(ref: str, hyp: str, rate: float,
                                 breakdown: tuple[int, int, int, int]) -> None:
    for metric in (cer, wer, reading_cer):
        counts = metric([ref], [hyp])
        assert counts.rate == rate
    counts = cer([ref], [hyp])
    assert (counts.substitutions, counts.deletions, counts.insertions,
            counts.reference_length) == breakdown


def test_empty_test_set() -> None:
    assert cer([], []) == ErrorCounts()
    assert cer([], []).rate == 0.0


def test_error_counts_arithmetic_and_validation() -> None:
    a = ErrorCounts(1, 2, 3, 4, 7)
    b = ErrorCounts(0, 1, 0, 2, 3)
    total = a + b
    assert total == ErrorCounts(1, 3, 3, 6, 10)
    assert sum([a, b]) == total
    assert total.errors == 7 and total.rate == pytest.approx(0.7)
    assert total.hypothesis_length == 1 + 3 + 6
    assert total.to_dict()["rate"] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="reference_length"):
        ErrorCounts(1, 1, 0, 1, 5)


def test_mismatched_inputs_raise() -> None:
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        cer(["a", "b"], ["a"])
    with pytest.raises(TypeError):
        cer("abc", "abd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown metric"):
        utterance_counts(["a"], ["a"], "ber")  # type: ignore[arg-type]


def test_utterance_scores() -> None:
    scores = utterance_scores("東京へ行きます。", "とうきょうへ行きます")
    assert scores["ref_normalized"] == "東京へ行きます"
    assert scores["reading_cer"] == 0.0
    assert isinstance(scores["cer"], float) and scores["cer"] > 0
    counts = scores["cer_counts"]
    assert isinstance(counts, dict) and counts["reference_length"] == 7
    assert "reading_cer" not in utterance_scores("a", "a", reading=False)
