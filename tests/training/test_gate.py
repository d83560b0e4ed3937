"""The versatility gate keeps the best in-domain checkpoint that does not drift."""

from __future__ import annotations

import pytest

from whisper_ja.config import ConfigError
from whisper_ja.text.metrics import ErrorCounts
from whisper_ja.training.gate import (
    CheckScores,
    GateSettings,
    Validation,
    choose,
    final_line,
    judge,
    language_id_counts,
)

N = 60  # utterances per made-up check set, 20 characters each


def _cer_scores(errors_per_utt: list[int], loops: int = 0) -> CheckScores:
    return CheckScores("unseen_cer", tuple(
        ErrorCounts(substitutions=e, hits=20 - e, reference_length=20) for e in errors_per_utt),
        loops)


def _lid(correct: int) -> CheckScores:
    detected = ["en"] * correct + ["ja"] * (40 - correct)
    return CheckScores("language_id", language_id_counts(detected))


UNTOUCHED = [_cer_scores([4] * N), _lid(40)]                    # CER 20%, 40/40 English
SAME = [_cer_scores([4] * N), _lid(40)]
WORSE = [_cer_scores([9] * N), _lid(40)]                        # CER 45%: drifted
FORGOT = [_cer_scores([3] * N), _lid(2)]                        # better CER, English forgotten
LOOPY = [_cer_scores([4] * N, loops=5), _lid(40)]


@pytest.mark.parametrize(("candidate", "passed", "drifted"), [
    (SAME, True, []), (WORSE, False, ["unseen_cer"]), (FORGOT, False, ["language_id"]),
    (LOOPY, False, ["unseen_cer"]),
])
def test_judge_names_what_drifted(candidate, passed, drifted) -> None:
    verdict = judge(UNTOUCHED, candidate, GateSettings(bootstrap=200))
    assert verdict.passed is passed
    assert [d.check for d in verdict.drifts if d.drifted] == drifted


def test_budget_absorbs_a_small_drift() -> None:
    slightly = [_cer_scores([5] * N), _lid(40)]  # +5 points
    assert not judge(UNTOUCHED, slightly, GateSettings(bootstrap=200)).passed
    assert judge(UNTOUCHED, slightly, GateSettings(bootstrap=200, cer_budget=0.06)).passed


def test_picks_a_checkpoint_that_is_not_the_best_in_domain_when_the_best_drifts() -> None:
    settings = GateSettings(bootstrap=200)
    validations = [
        Validation(0, 0.170, judge(UNTOUCHED, UNTOUCHED, settings)),
        Validation(100, 0.140, judge(UNTOUCHED, SAME, settings)),
        Validation(200, 0.120, judge(UNTOUCHED, WORSE, settings)),   # best in-domain, drifted
        Validation(300, 0.110, judge(UNTOUCHED, FORGOT, settings)),  # better still, drifted
    ]
    chosen = choose(validations)
    assert chosen is not None and chosen.step == 100
    line = final_line(validations)
    assert line.startswith("versatility gate passed: kept step 100")
    assert "best in-domain step 300" in line


def test_failed_gate_says_which_set_drifted_and_by_how_much() -> None:
    settings = GateSettings(bootstrap=200)
    # The trained checkpoint is not even better in-domain: its drift is still what is named.
    validations = [Validation(0, 0.17, judge(UNTOUCHED, UNTOUCHED, settings)),
                   Validation(100, 0.19, judge(UNTOUCHED, WORSE, settings))]
    line = final_line(validations)
    assert line.startswith("versatility gate FAILED")
    assert "unseen-domain CER +25.00 points" in line and "untouched model (step 0)" in line


def test_no_trained_candidate_is_not_called_a_drift() -> None:
    # Only checkpoints better in-domain than the kept one are judged; here none was.
    validations = [Validation(0, 0.17, judge(UNTOUCHED, UNTOUCHED, GateSettings(bootstrap=50)))]
    line = final_line(validations)
    assert line == ("versatility gate: no trained checkpoint beat the untouched model "
                    "in-domain (CER 17.00%); kept the untouched model (step 0)")


def test_checks_must_match_and_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="checks differ"):
        judge(UNTOUCHED, UNTOUCHED[:1], GateSettings())
    with pytest.raises(ConfigError, match="gate.cer_budget"):
        GateSettings(cer_budget=-0.1)
    assert not GateSettings().active
