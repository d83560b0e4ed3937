"""Measuring the versatility gate's check sets on a model, during ``train`` or for ``evaluate``.

:mod:`whisper_ja.training.gate` judges numbers; this module produces them: it decodes (a) the
unseen-domain Japanese check (CER counts per utterance and loops) and (b) the retention set
(forced-English WER counts and language ID, through the retention suite's own measurement), with
the decoding guards on as everywhere. :class:`GateRun` keeps the untouched model's scores (in
``OUT/gate_untouched.json``, so a resumed run judges against the same numbers) and one verdict per
validation, and writes them to the run log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from whisper_ja.audio.features import ContextPolicy
from whisper_ja.data.manifest import Utterance, read_manifest
from whisper_ja.evaluation.retention.measure import measure_retention
from whisper_ja.inference.engine import Engine, live_engine, needs_snapshot
from whisper_ja.inference.options import DecodingOptions
from whisper_ja.model import load_model
from whisper_ja.model.context import (
    apply_saved_context,
    enable_dynamic_context,
    saved_policy,
    uses_dynamic_context,
)
from whisper_ja.text.metrics import ErrorCounts, utterance_counts
from whisper_ja.training.gate import (
    CheckScores,
    GateSettings,
    Validation,
    Verdict,
    final_line,
    judge,
    language_id_counts,
)
from whisper_ja.training.settings import TrainConfig

__all__ = ["GateDecoding", "GateRun", "gate_models", "load_check_sets", "measure_checks",
           "training_decoding", "untouched_decoder"]

LOGGER = logging.getLogger(__name__)

UNTOUCHED_FILE = "gate_untouched.json"


def load_check_sets(settings: GateSettings) -> tuple[list[Utterance], list[Utterance]]:
    """The unseen-domain and retention utterances (each cut to ``gate.limit`` if set)."""
    limit = settings.limit or None
    unseen = read_manifest(*settings.unseen)[:limit] if settings.unseen else []
    retention = read_manifest(*settings.retention)[:limit] if settings.retention else []
    return unseen, retention


@torch.no_grad()
def measure_checks(decoder: Engine, unseen: Sequence[Utterance],
                   retention: Sequence[Utterance]) -> list[CheckScores]:
    """Per-utterance scores of one model (on its backend) on the gate's check sets.

    Args:
        decoder: The model on transformers or as a CTranslate2 export, decoding with the
            context it runs with, the guards on.
        unseen: The unseen-domain Japanese check (may be empty).
        retention: The other-language retention set (may be empty).
    """
    scores: list[CheckScores] = []
    if unseen:
        results = decoder.decode_utterances(unseen, language="ja").results
        hyps = [r.text if r is not None else "" for r in results]
        counts = utterance_counts([u.text for u in unseen], hyps, "cer")
        scores.append(CheckScores("unseen_cer", tuple(counts),
                                  sum(bool(r and r.looped) for r in results)))
    if retention:
        records = measure_retention(decoder, retention).records
        scores.append(CheckScores("english_wer", tuple(
            ErrorCounts(**r["forced_counts"]) for r in records)))
        scores.append(CheckScores("language_id", tuple(
            c for r in records for c in language_id_counts([r["detected"]], r["language"]))))
    return scores


@dataclass(frozen=True)
class GateDecoding:
    """How the gate decodes a model: backend, options, context policy."""

    settings: GateSettings
    options: DecodingOptions
    policy: ContextPolicy
    progress: bool = False

    @contextlib.contextmanager
    def decoder(self, model: Any, processor: Any) -> Iterator[Engine]:
        """``model`` as it is now, ready to decode (in eval mode; its mode restored after).

        With ``backend: ct2`` that is a temporary CTranslate2 export of it
        (:func:`whisper_ja.inference.ct2_snapshot.ct2_snapshot`).
        """
        was_training = model.training
        model.eval()
        try:
            policy = dataclasses.replace(self.policy, dynamic=uses_dynamic_context(model))
            with live_engine(model, processor, self.settings.runtime, self.options,
                             policy) as engine:
                yield engine
        finally:
            model.train(was_training)

    def measure(self, model: Any, processor: Any, unseen: Sequence[Utterance],
                retention: Sequence[Utterance]) -> list[CheckScores]:
        """:func:`measure_checks` of ``model`` on this backend."""
        with self.decoder(model, processor) as decoder:
            return measure_checks(decoder, unseen, retention)


def training_decoding(config: TrainConfig) -> GateDecoding:
    """How a training run's gate decodes (and its validation, when the gate snapshots).

    As validation does: the run's token limit, batch size and context policy, the guards on.
    """
    options = DecodingOptions(max_new_tokens=config.run.val_max_new_tokens,
                            batch_size=config.optim.batch_size)
    return GateDecoding(config.gate, options, config.efficiency.context)


@contextlib.contextmanager
def untouched_decoder(config: TrainConfig, model: Any, processor: Any, *,
                      wanted: bool) -> Iterator[Engine | None]:
    """The model before its first step on the gate's ct2 backend, for the gate and step 0.

    Yields None (each then decodes as it would) unless ``wanted`` (the step-0 validation runs
    here) and the gate decodes on ``ct2``: then one snapshot serves the gate's untouched scores
    and the step-0 validation, instead of two exports of the same weights (~5-8 s on a CPU).
    """
    if not (wanted and config.gate.active and needs_snapshot(config.gate.runtime)):
        yield None
        return
    with training_decoding(config).decoder(model, processor) as decoder:
        yield decoder


def _to_json(scores: Sequence[CheckScores]) -> list[dict[str, Any]]:
    return [{"check": s.check, "loops": s.loops,
             "counts": [dataclasses.asdict(c) for c in s.counts]} for s in scores]


def _from_json(data: Sequence[dict[str, Any]]) -> list[CheckScores]:
    return [CheckScores(d["check"], tuple(ErrorCounts(**c) for c in d["counts"]), d["loops"])
            for d in data]


@dataclass
class GateRun:
    """The gate of one training run: check sets, untouched scores, a verdict per validation."""

    settings: GateSettings
    unseen: list[Utterance]
    retention: list[Utterance]
    decoding: GateDecoding
    untouched: list[CheckScores]
    validations: list[Validation] = dataclasses.field(default_factory=list)

    @classmethod
    def start(cls, model: Any, processor: Any, settings: GateSettings, out: Path, *,
              options: DecodingOptions, policy: ContextPolicy,
              decoder: Engine | None = None) -> GateRun | None:
        """Measure the untouched model (or reload its scores when resuming); None if inactive.

        Call before the first optimizer step: a fresh LoRA adapter (B = 0) or an untrained
        full model decodes exactly as the untouched model does. ``decoder``: the model ready
        on the gate's backend when the caller has one (the step-0 validation's snapshot, so
        one export serves both), else one is made here.
        """
        if not settings.active:
            return None
        unseen, retention = load_check_sets(settings)
        decoding = GateDecoding(settings, options, policy)
        stored = out / UNTOUCHED_FILE
        if stored.is_file():
            untouched = _from_json(json.loads(stored.read_text(encoding="utf-8")))
        else:
            untouched = (measure_checks(decoder, unseen, retention) if decoder is not None
                         else decoding.measure(model, processor, unseen, retention))
            out.mkdir(parents=True, exist_ok=True)
            stored.write_text(json.dumps(_to_json(untouched)) + "\n", encoding="utf-8")
        return cls(settings, unseen, retention, decoding, untouched)

    @classmethod
    def for_training(cls, run: Any, decoder: Engine | None = None) -> GateRun | None:
        """The gate of a training run (``training.loop``'s run state), before its first step.

        None when the gate is off, has no check sets, or the run has no validation (the gate
        judges validations). Decodes as validation does: the run's token limit, batch size and
        context policy, the guards on; ``decoder`` as in :meth:`start`.
        """
        config = run.config
        if not config.gate.active or not run.data.validation_utterances:
            return None
        if run.progress.step > 0 and not (config.out / UNTOUCHED_FILE).is_file():
            LOGGER.warning("gate: resumed at step %d without %s; the untouched model cannot be "
                           "measured any more, so this run has no gate", run.progress.step,
                           UNTOUCHED_FILE)
            return None
        decoding = training_decoding(config)
        return cls.start(run.accelerator.unwrap_model(run.model), run.processor, config.gate,
                         config.out, options=decoding.options, policy=decoding.policy,
                         decoder=decoder)

    def check(self, model: Any, processor: Any, step: int, in_domain_cer: float, *,
              decoder: Engine | None = None) -> tuple[bool, dict[str, Any]]:
        """Judge ``model`` at ``step``; returns whether it passed and a log entry.

        ``decoder``: the model ready on the gate's backend, when the caller has one (the
        validation's snapshot); else it is made here.
        """
        if step == 0:
            scores = self.untouched
        elif decoder is not None:
            scores = measure_checks(decoder, self.unseen, self.retention)
        else:
            scores = self.decoding.measure(model, processor, self.unseen, self.retention)
        verdict = judge(self.untouched, scores, self.settings, seed=step)
        self.validations.append(Validation(step, in_domain_cer, verdict))
        entry: dict[str, Any] = {"step": step, "gate_passed": verdict.passed}
        for d in verdict.drifts:
            entry[f"gate_{d.check}"] = round(d.value, 5)
            entry[f"gate_{d.check}_delta"] = round(d.delta, 5)
            if d.check == "unseen_cer":
                entry["gate_unseen_loops"] = d.loops
        return verdict.passed, entry

    def summary(self) -> dict[str, Any]:
        """What the training summary records about the gate."""
        return {"gate_line": final_line(self.validations),
                "gate_sets": {"unseen": len(self.unseen), "retention": len(self.retention)},
                "gate_validations": [
                    {"step": v.step, "in_domain_cer": v.in_domain_cer,
                     "passed": v.verdict.passed,
                     "drifts": [dataclasses.asdict(d) for d in v.verdict.drifts]}
                    for v in self.validations]}


def _local(name: str | Path) -> Path | None:
    return Path(name) if Path(name).is_dir() else None


def gate_models(model: str, adapter: Path | None, settings: GateSettings, *,
                baseline: str | None = None, options: DecodingOptions | None = None,
                device: str = "cpu", progress: bool = True) -> tuple[Verdict, str]:
    """Run the gate on any model: ``model`` (+ ``adapter``) against the untouched one.

    The untouched model is ``baseline`` when given, else ``model`` without its adapter; both
    decode with the adapted model's context (its saved policy, the 8 s floor by default) on
    ``settings.runtime``, as the gate does during training.

    Returns:
        The verdict and its one line.
    """
    options = options or DecodingOptions()
    unseen, retention = load_check_sets(settings)
    after = load_model(model, adapter=adapter, device=device, dtype=torch.float32)
    dynamic = apply_saved_context(after.model, adapter)
    decoding = GateDecoding(settings, options, saved_policy(adapter, _local(model)), progress)
    scores_after = decoding.measure(after.model, after.processor, unseen, retention)
    del after
    before = load_model(baseline or model, device=device, dtype=torch.float32)
    if dynamic:
        enable_dynamic_context(before.model)
    scores_before = decoding.measure(before.model, before.processor, unseen, retention)
    verdict = judge(scores_before, scores_after, settings)
    moves = "; ".join(d.describe() for d in verdict.drifts)
    line = (f"versatility gate {'passed' if verdict.passed else 'FAILED'} "
            f"(SYNTHETIC check sets): {moves}")
    return verdict, line
