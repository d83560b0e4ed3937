from __future__ import annotations

import random

import pytest

from whisper_ja.text import metric_interval, paired_bootstrap
from whisper_ja.text.bootstrap import interval_from_counts, paired_bootstrap_counts
from whisper_ja.text.metrics import ErrorCounts

SENTENCES = ["今日はとても良い天気です", "私は毎朝コーヒーを飲みます", "駅までの道を教えてください",
             "この本はとても面白かった", "明日は雨が降るでしょう", "東京から大阪まで新幹線で行く"]


def _corrupt(text: str, rng: random.Random, p: float) -> str:
    """Replace each character with a wrong one with probability p."""
    return "".join("ぬ" if rng.random() < p else c for c in text)


@pytest.fixture(scope="module")
def test_set() -> tuple[list[str], list[str], list[str]]:
    rng = random.Random(1)
    refs = [SENTENCES[i % len(SENTENCES)] for i in range(120)]
    worse = [_corrupt(r, rng, 0.25) for r in refs]
    better = [_corrupt(r, rng, 0.05) for r in refs]
    return refs, worse, better


def test_identical_systems_give_an_interval_containing_zero(test_set) -> None:
    refs, worse, _ = test_set
    result = paired_bootstrap(refs, worse, worse, n_resamples=300)
    assert result.delta == 0.0
    assert result.low <= 0.0 <= result.high
    assert not result.significant


def test_clearly_better_system_excludes_zero(test_set) -> None:
    refs, worse, better = test_set
    result = paired_bootstrap(refs, worse, better, n_resamples=300)
    assert result.delta < 0  # b (better) minus a (worse)
    assert result.high < 0 and result.significant
    assert result.p_value < 0.01
    assert result.value_a == pytest.approx(result.value_b - result.delta)
    reverse = paired_bootstrap(refs, better, worse, n_resamples=300)
    assert reverse.low > 0 and reverse.delta == pytest.approx(-result.delta)


def test_deterministic_for_a_seed(test_set) -> None:
    refs, worse, better = test_set
    first = paired_bootstrap(refs, worse, better, n_resamples=200, seed=7)
    again = paired_bootstrap(refs, worse, better, n_resamples=200, seed=7)
    other = paired_bootstrap(refs, worse, better, n_resamples=200, seed=8)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)


def test_single_system_interval(test_set) -> None:
    refs, worse, _ = test_set
    interval = metric_interval(refs, worse, n_resamples=300)
    assert interval.low < interval.value < interval.high
    assert 0.15 < interval.value < 0.35  # about the 25% corruption rate
    assert metric_interval(refs, worse, n_resamples=300) == interval
    wider = metric_interval(refs, worse, n_resamples=300, confidence=0.99)
    assert wider.low <= interval.low and wider.high >= interval.high


def test_bootstrap_works_for_wer_and_reading() -> None:
    refs = SENTENCES * 3
    result = paired_bootstrap(refs, refs, [s[:-2] for s in refs], metric="wer",
                              n_resamples=100)
    assert result.metric == "wer" and result.delta > 0
    assert metric_interval(refs, refs, metric="reading_cer", n_resamples=50).value == 0.0


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="empty test set"):
        metric_interval([], [])
    with pytest.raises(ValueError, match="n_resamples"):
        metric_interval(["a"], ["a"], n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        metric_interval(["a"], ["a"], confidence=1.5)
    with pytest.raises(ValueError, match="reference lengths differ"):
        paired_bootstrap_counts([ErrorCounts(0, 0, 0, 2, 2)], [ErrorCounts(0, 0, 0, 3, 3)])


def test_empty_references_follow_the_rate_rule() -> None:
    # one utterance with an empty reference and inserted text: rate 1.0, never inf or nan
    counts = [ErrorCounts(insertions=2)]
    interval = interval_from_counts(counts, n_resamples=20)
    assert interval.value == interval.low == interval.high == 1.0
