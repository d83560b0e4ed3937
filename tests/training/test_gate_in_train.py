"""The versatility gate inside ``train``: candidates judged, the kept model passes."""

from __future__ import annotations

import json

import pytest

from tests.training.test_loop import tiny_config
from whisper_ja.training import gate_checks, loop
from whisper_ja.training.gate import Drift, Verdict
from whisper_ja.training.loop import train


def _drifted(untouched, candidate, settings, seed=0):
    return Verdict((Drift("unseen_cer", 0.2, 0.5, 0.3, 0.2, 0.4, 0.0, 3, 0, True),))


def _in_domain_cers(monkeypatch, *rates):
    """Validation returns these CERs in turn (the tiny random model's own are arbitrary)."""
    queue = list(rates)
    monkeypatch.setattr(loop, "validate", lambda *args: queue.pop(0))


@pytest.mark.slow
@pytest.mark.parametrize("drifts", [False, True])
def test_gate_judges_each_validation_and_keeps_a_passing_model(
        tmp_path, tiny_whisper_dir, clips_manifest, monkeypatch, drifts):
    if drifts:  # every trained checkpoint drifts: the untouched model (step 0) must be kept
        real_judge = gate_checks.judge
        monkeypatch.setattr(gate_checks, "judge", lambda u, c, s, seed=0: (
            real_judge(u, c, s, seed) if seed == 0 else _drifted(u, c, s)))
    out = tmp_path / "run"
    config = tiny_config(out, tiny_whisper_dir, clips_manifest, "mode=lora",
                         f"data.validation=[{clips_manifest}]", "run.validate_at_start=true",
                         "run.validate_every=2", f"gate.unseen=[{clips_manifest}]",
                         "gate.bootstrap=50", "gate.backend=transformers")
    _in_domain_cers(monkeypatch, 0.5, 0.4)  # step 2 is better in-domain: a candidate
    summary = train(config).summary
    assert [v["step"] for v in summary["gate_validations"]] == [0, 2]
    assert (out / "gate_untouched.json").is_file()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    passed = [e["gate_passed"] for e in log if "gate_passed" in e]
    assert len(passed) == 2 and passed[0] is True  # the untouched model passes by definition
    assert "label_changes" in summary
    if drifts:
        assert passed[1] is False and summary["best_step"] == 0
        assert summary["gate_line"].startswith("versatility gate FAILED")
        assert "unseen-domain CER +30.00 points" in summary["gate_line"]
    else:
        assert summary["gate_line"].startswith("versatility gate")


@pytest.mark.slow
def test_gate_skips_checkpoints_that_cannot_be_kept(tmp_path, tiny_whisper_dir, clips_manifest,
                                                    monkeypatch):
    judged = []
    real_check = gate_checks.GateRun.check
    monkeypatch.setattr(gate_checks.GateRun, "check", lambda self, model, processor, step, cer,
                        **kwargs: (judged.append(step),
                                   real_check(self, model, processor, step, cer, **kwargs))[1])
    _in_domain_cers(monkeypatch, 0.5, 0.4, 0.45)  # step 4 is worse than the kept step 2
    out = tmp_path / "run"
    config = tiny_config(out, tiny_whisper_dir, clips_manifest, "mode=lora", "optim.max_steps=4",
                         f"data.validation=[{clips_manifest}]", "run.validate_at_start=true",
                         "run.validate_every=2", "run.patience=0",
                         f"gate.unseen=[{clips_manifest}]", "gate.bootstrap=50",
                         "gate.cer_budget=10", "gate.loop_budget=100",  # every judged one passes
                         "gate.backend=transformers")  # validation through loop.validate
    summary = train(config).summary
    assert judged == [0, 2] and summary["best_step"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    last = [e for e in log if e.get("step") == 4 and "val_cer" in e][-1]
    assert last["gate"].startswith("not judged") and "gate_passed" not in last
