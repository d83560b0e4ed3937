"""The versatility gate: adapt without breaking what the untouched model could do.

A checkpoint is judged on check sets besides the in-domain validation set: (a) the unseen-domain
Japanese check (:mod:`whisper_ja.data.unseen`: CER and loops) and (b) the other-language
retention set (:mod:`whisper_ja.data.english`: forced-English WER and language-ID error). For
each check the paired bootstrap (:func:`whisper_ja.text.bootstrap.paired_bootstrap_counts`)
gives the change against the untouched model with its interval; the check **drifts** when that
change exceeds the check's budget (``judge: interval``: even the interval's lower end is above
the budget, i.e. it is significantly worse by more than the budget; ``judge: point``: the
measured change is), or when the unseen set loops more often than the untouched model by more
than ``loop_budget``.

The kept checkpoint is the best in-domain one that passes (:func:`choose`); the run ends with
one line (:func:`final_line`): gate passed, or which set drifted and by how much. Everything
here is pure (numbers in, verdicts out), so the loop only measures and asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from whisper_ja.config import ConfigError, field
from whisper_ja.inference.options import RuntimeSettings
from whisper_ja.text.bootstrap import paired_bootstrap_counts
from whisper_ja.text.metrics import ErrorCounts

__all__ = ["CheckScores", "Drift", "GateSettings", "Validation", "Verdict", "choose",
           "final_line", "judge", "language_id_counts"]

CHECK_NAMES = {"unseen_cer": "unseen-domain CER", "english_wer": "English WER",
               "language_id": "English language-ID error"}
"""Check keys and how lines name them."""


@dataclass(frozen=True)
class GateSettings:
    """The versatility gate (``gate.*``): check sets and how far they may drift."""

    enabled: bool = field(True, help="judge checkpoints on the check sets below (when given)")
    unseen: tuple[Path, ...] = field((), help="unseen-domain Japanese check manifest(s) "
                                     "(whisper-ja's unseen maker); empty = no check (a)")
    retention: tuple[Path, ...] = field((), help="other-language retention manifest(s) "
                                        "(synthetic-espeak English); empty = no check (b)")
    limit: int = field(0, help="use at most this many utterances of each check set (0 = all)")
    cer_budget: float = field(0.0, help="unseen-domain CER may rise by this much (absolute)")
    wer_budget: float = field(0.0, help="forced-English WER may rise by this much (absolute)")
    language_id_budget: float = field(0.0, help="English language-ID error may rise by this "
                                      "much (absolute share of clips)")
    loop_budget: int = field(0, help="extra looping unseen-domain clips allowed over untouched")
    judge: Literal["interval", "point"] = field(
        "interval", help="interval: drift only when significantly above budget (paired "
                         "bootstrap); point: when the measured change is above budget")
    bootstrap: int = field(1000, help="paired-bootstrap resamples")
    confidence: float = field(0.95, help="confidence of the paired interval")
    runtime: RuntimeSettings = field(
        default_factory=RuntimeSettings, inline=True,
        help="where the check sets are decoded (gate.backend, gate.compute_type, gate.device): "
             "as every command decodes; on CTranslate2 through a snapshot of each judged "
             "checkpoint (made in a few seconds, ~2x faster on a CPU than transformers)")

    def __post_init__(self) -> None:
        for name in ("cer_budget", "wer_budget", "language_id_budget", "limit", "loop_budget"):
            if getattr(self, name) < 0:
                raise ConfigError(f"gate.{name}: must be >= 0, got {getattr(self, name)}")
        if self.bootstrap < 1:
            raise ConfigError(f"gate.bootstrap: must be >= 1, got {self.bootstrap}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"gate.confidence: must be in (0, 1), got {self.confidence}")

    @property
    def active(self) -> bool:
        """Whether there is anything to judge."""
        return self.enabled and bool(self.unseen or self.retention)

    def budget(self, check: str) -> float:
        """The drift budget of a check (a key of :data:`CHECK_NAMES`)."""
        return {"unseen_cer": self.cer_budget, "english_wer": self.wer_budget,
                "language_id": self.language_id_budget}[check]


@dataclass(frozen=True)
class CheckScores:
    """One model's per-utterance results on one check.

    Attributes:
        check: A key of :data:`CHECK_NAMES`.
        counts: Per-utterance error counts, in the check set's order.
        loops: Clips whose decoding looped (counted for the unseen-domain check).
    """

    check: str
    counts: tuple[ErrorCounts, ...]
    loops: int = 0


def language_id_counts(detected: Sequence[str], expected: str = "en") -> tuple[ErrorCounts, ...]:
    """Per-clip language-ID errors as counts (one unit per clip), for the paired bootstrap."""
    return tuple(ErrorCounts(hits=1, reference_length=1) if lang == expected
                 else ErrorCounts(substitutions=1, reference_length=1) for lang in detected)


@dataclass(frozen=True)
class Drift:
    """How far one check moved from the untouched model (rates as fractions)."""

    check: str
    untouched: float
    value: float
    delta: float
    low: float
    high: float
    budget: float
    loops: int
    loops_untouched: int
    drifted: bool

    def describe(self) -> str:
        """``unseen-domain CER +4.10 points (95% CI +2.0..+6.3, budget 0.00)``, loops if any."""
        text = (f"{CHECK_NAMES[self.check]} {100 * self.delta:+.2f} points "
                f"({100 * self.untouched:.2f}% -> {100 * self.value:.2f}%, CI "
                f"{100 * self.low:+.2f}..{100 * self.high:+.2f}, budget {100 * self.budget:.2f})")
        if self.check == "unseen_cer":
            text += f", loops {self.loops_untouched} -> {self.loops}"
        return text


@dataclass(frozen=True)
class Verdict:
    """The gate's judgement of one checkpoint."""

    drifts: tuple[Drift, ...]

    @property
    def passed(self) -> bool:
        """No check drifted beyond its budget."""
        return not any(d.drifted for d in self.drifts)


def judge(untouched: Sequence[CheckScores], candidate: Sequence[CheckScores],
          settings: GateSettings, seed: int = 0) -> Verdict:
    """Judge a checkpoint's check scores against the untouched model's.

    Raises:
        ValueError: the two sides do not hold the same checks on the same utterances.
    """
    before = {s.check: s for s in untouched}
    if set(before) != {s.check for s in candidate}:
        raise ValueError(f"checks differ: untouched {sorted(before)}, candidate "
                         f"{sorted(s.check for s in candidate)}")
    drifts = []
    for after in candidate:
        base = before[after.check]
        result = paired_bootstrap_counts(base.counts, after.counts, n_resamples=settings.bootstrap,
                                         seed=seed, confidence=settings.confidence)
        budget = settings.budget(after.check)
        judged = result.low if settings.judge == "interval" else result.delta
        loops_over = after.loops - base.loops > settings.loop_budget
        drifts.append(Drift(after.check, result.value_a, result.value_b, result.delta,
                            result.low, result.high, budget, after.loops, base.loops,
                            judged > budget or loops_over))
    return Verdict(tuple(drifts))


@dataclass(frozen=True)
class Validation:
    """One validation of a run: its step, in-domain CER and the gate's verdict."""

    step: int
    in_domain_cer: float
    verdict: Verdict


def choose(validations: Sequence[Validation]) -> Validation | None:
    """The best in-domain validation whose verdict passed (earliest on ties); None if none did."""
    passing = [v for v in validations if v.verdict.passed]
    return min(passing, key=lambda v: (v.in_domain_cer, v.step)) if passing else None


def final_line(validations: Sequence[Validation]) -> str:
    """The run's last line: gate passed (and at which step), or what drifted and how much."""
    if not validations:
        return "versatility gate: not run (no validation)"
    chosen = choose(validations)
    # The best trained checkpoint (the untouched model at step 0 is judged only as a fallback).
    trained = [v for v in validations if v.step > 0]
    if not trained:  # only checkpoints better in-domain are judged: none was
        return (f"versatility gate: no trained checkpoint beat the untouched model in-domain "
                f"(CER {100 * validations[0].in_domain_cer:.2f}%); kept the untouched model "
                f"(step {validations[0].step})")
    best = min(trained, key=lambda v: (v.in_domain_cer, v.step))
    if chosen is not None and chosen.step > 0:
        moves = "; ".join(d.describe() for d in chosen.verdict.drifts)
        note = "" if chosen is best else (f" (the best in-domain step {best.step}, CER "
                                          f"{100 * best.in_domain_cer:.2f}%, drifted)")
        return (f"versatility gate passed: kept step {chosen.step}, in-domain CER "
                f"{100 * chosen.in_domain_cer:.2f}%{note}; {moves}")
    drifted = "; ".join(d.describe() for d in best.verdict.drifts if d.drifted)
    kept = ("kept the untouched model (step 0)" if chosen is not None
            else f"kept step {best.step} anyway")
    return (f"versatility gate FAILED: no trained checkpoint stayed within budget; best "
            f"in-domain step {best.step} drifted: {drifted}; {kept}")
