"""Bootstrap confidence intervals: is an improvement real, or test-set noise?

Test sets of a few hundred utterances move CER by ±0.01 or more from the choice of utterances
alone. Both functions resample whole utterances with replacement (utterances, not characters,
are the independent units) and recompute the corpus-level rate each time (total edits / total
reference length of the resample). Intervals are percentile intervals.

:func:`paired_bootstrap` compares two systems on the SAME utterances: each resample uses the
same utterance indices for both, so the shared difficulty of an utterance cancels and the
interval of the difference is much tighter than two separate intervals suggest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from whisper_ja.text.metrics import ErrorCounts, Metric, utterance_counts
from whisper_ja.text.normalize import NormalizerLike

__all__ = [
    "BootstrapResult",
    "IntervalResult",
    "metric_interval",
    "paired_bootstrap",
    "paired_bootstrap_counts",
    "interval_from_counts",
]


@dataclass(frozen=True)
class BootstrapResult:
    """Paired bootstrap of ``metric(b) - metric(a)``: negative ``delta`` means b is better.

    Attributes:
        metric: ``cer``, ``wer`` or ``reading_cer``.
        value_a: Corpus-level rate of system a on all utterances.
        value_b: Corpus-level rate of system b.
        delta: ``value_b - value_a``.
        low: Lower end of the interval of the difference.
        high: Upper end.
        confidence: Interval coverage, e.g. 0.95.
        p_value: Two-sided bootstrap p-value of "no difference" (twice the smaller share of
            resamples on either side of 0, capped at 1).
        n_utterances: Utterances resampled.
        n_resamples: Bootstrap resamples drawn.
        seed: Random seed (same seed, same interval).
    """

    metric: str
    value_a: float
    value_b: float
    delta: float
    low: float
    high: float
    confidence: float
    p_value: float
    n_utterances: int
    n_resamples: int
    seed: int

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0 (the systems differ at this confidence)."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields plus ``significant``."""
        return {**asdict(self), "significant": self.significant}


@dataclass(frozen=True)
class IntervalResult:
    """Bootstrap interval of one system's corpus-level rate.

    Attributes:
        metric: ``cer``, ``wer`` or ``reading_cer``.
        value: Rate on all utterances.
        low: Lower end of the interval.
        high: Upper end.
        confidence: Interval coverage, e.g. 0.95.
        n_utterances: Utterances resampled.
        n_resamples: Bootstrap resamples drawn.
        seed: Random seed.
    """

    metric: str
    value: float
    low: float
    high: float
    confidence: float
    n_utterances: int
    n_resamples: int
    seed: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self)


def _check(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _arrays(counts: Sequence[ErrorCounts]) -> tuple[np.ndarray, np.ndarray]:
    errors = np.array([c.errors for c in counts], dtype=np.float64)
    lengths = np.array([c.reference_length for c in counts], dtype=np.float64)
    return errors, lengths


def _rates(errors: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Corpus rates of summed errors/lengths, with ErrorCounts.rate's empty-reference rule."""
    safe = np.where(lengths > 0, lengths, 1.0)
    return np.where(lengths > 0, errors / safe, np.where(errors > 0, 1.0, 0.0))


_MAX_BLOCK = 2_000_000
"""Indices drawn at once (16 MB); large test sets are resampled block by block."""


def _resampled_sums(columns: Sequence[np.ndarray], n_resamples: int,
                    seed: int) -> list[np.ndarray]:
    """Per resample, the sum of each column over utterances drawn with replacement.

    Every column is summed over the SAME drawn indices (that is what makes the paired
    bootstrap paired). Deterministic for a seed.
    """
    n = len(columns[0])
    if n == 0:
        raise ValueError("cannot bootstrap an empty test set (0 utterances)")
    rng = np.random.default_rng(seed)
    block = max(1, _MAX_BLOCK // n)
    sums: list[list[np.ndarray]] = [[] for _ in columns]
    for start in range(0, n_resamples, block):
        idx = rng.integers(0, n, size=(min(block, n_resamples - start), n))
        for out, column in zip(sums, columns, strict=True):
            out.append(column[idx].sum(axis=1))
    return [np.concatenate(parts) for parts in sums]


def interval_from_counts(counts: Sequence[ErrorCounts], metric: str = "cer",
                         n_resamples: int = 1000, seed: int = 0,
                         confidence: float = 0.95) -> IntervalResult:
    """Bootstrap interval from per-utterance counts (see :func:`metric_interval`)."""
    _check(n_resamples, confidence)
    errors, lengths = _arrays(counts)
    rates = _rates(*_resampled_sums([errors, lengths], n_resamples, seed))
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(rates, [alpha, 1.0 - alpha])
    value = float(_rates(np.array([errors.sum()]), np.array([lengths.sum()]))[0])
    return IntervalResult(metric, value, float(low), float(high), confidence, len(counts),
                          n_resamples, seed)


def paired_bootstrap_counts(counts_a: Sequence[ErrorCounts], counts_b: Sequence[ErrorCounts],
                            metric: str = "cer", n_resamples: int = 1000, seed: int = 0,
                            confidence: float = 0.95) -> BootstrapResult:
    """Paired bootstrap from per-utterance counts of two systems on the same utterances.

    Raises:
        ValueError: the two count lists differ in length, or a reference length differs.
    """
    _check(n_resamples, confidence)
    if len(counts_a) != len(counts_b):
        raise ValueError(f"system a has {len(counts_a)} utterances, system b {len(counts_b)}")
    err_a, len_a = _arrays(counts_a)
    err_b, len_b = _arrays(counts_b)
    if not np.array_equal(len_a, len_b):
        bad = int(np.flatnonzero(len_a != len_b)[0])
        raise ValueError(f"utterance {bad}: reference lengths differ between systems "
                         f"({int(len_a[bad])} vs {int(len_b[bad])}); same references needed")
    sum_a, sum_b, lengths = _resampled_sums([err_a, err_b, len_a], n_resamples, seed)
    deltas = _rates(sum_b, lengths) - _rates(sum_a, lengths)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(deltas, [alpha, 1.0 - alpha])
    total = np.array([len_a.sum()])
    value_a = float(_rates(np.array([err_a.sum()]), total)[0])
    value_b = float(_rates(np.array([err_b.sum()]), total)[0])
    p_value = min(1.0, 2.0 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    return BootstrapResult(metric, value_a, value_b, value_b - value_a, float(low), float(high),
                           confidence, p_value, len(counts_a), n_resamples, seed)


def paired_bootstrap(refs: Sequence[str], hyps_a: Sequence[str], hyps_b: Sequence[str],
                     metric: Metric = "cer", normalizer: NormalizerLike = "default",
                     n_resamples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> BootstrapResult:
    """Confidence interval of ``metric(b) - metric(a)`` on the same utterances.

    Args:
        refs: Raw references.
        hyps_a: Hypotheses of system a (the baseline), same order.
        hyps_b: Hypotheses of system b (the candidate), same order.
        metric: ``cer``, ``wer`` or ``reading_cer``.
        normalizer: Preset name or function.
        n_resamples: Bootstrap resamples (1000 is plenty for a 95% interval).
        seed: Random seed; the same seed gives the same interval.
        confidence: Interval coverage.

    Returns:
        The observed difference, its interval and a bootstrap p-value. ``result.significant``
        is True when the interval excludes 0.

    Example:
        >>> r = paired_bootstrap(["今日は晴れ"] * 20, ["今日は晴れ"] * 20, ["京は晴れ"] * 20)
        >>> r.delta > 0 and r.significant
        True
    """
    counts_a = utterance_counts(refs, hyps_a, metric, normalizer)
    counts_b = utterance_counts(refs, hyps_b, metric, normalizer)
    return paired_bootstrap_counts(counts_a, counts_b, metric, n_resamples, seed, confidence)


def metric_interval(refs: Sequence[str], hyps: Sequence[str], metric: Metric = "cer",
                    normalizer: NormalizerLike = "default", n_resamples: int = 1000,
                    seed: int = 0, confidence: float = 0.95) -> IntervalResult:
    """Bootstrap confidence interval of one system's corpus-level rate.

    Args:
        refs: Raw references.
        hyps: Hypotheses, same order.
        metric: ``cer``, ``wer`` or ``reading_cer``.
        normalizer: Preset name or function.
        n_resamples: Bootstrap resamples.
        seed: Random seed.
        confidence: Interval coverage.

    Returns:
        The rate on all utterances and its percentile interval.
    """
    counts = utterance_counts(refs, hyps, metric, normalizer)
    return interval_from_counts(counts, metric, n_resamples, seed, confidence)
