"""The ``evaluate`` command: decode a test manifest with Japanese forced and write a report.

Output folder (``--out``):

- ``hypotheses.jsonl``: one line per utterance (id, ref, hyp, its CER, looped flag, corpus,
  speaker, duration and the edit counts of every metric);
- ``report.json`` / ``report.md``: CER, WER and reading CER with bootstrap confidence intervals,
  edit breakdown, per corpus and per speaker/voice, decoding speed (real-time factor), repetition
  loops, the worst utterances, term recall (``--terms``) and, with ``--compare OTHER_RUN``, the
  differences with paired-bootstrap intervals;
- PNG plots (CER per corpus/voice, before/after in compare mode, training curves with
  ``--train-run``).

Example:
    ``whisper-ja evaluate --manifest test.jsonl --adapter runs/lora --out eval/lora``
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from whisper_ja.audio.io import AudioError
from whisper_ja.config import ConfigError, config_to_dict, field, save_config
from whisper_ja.data.domain import read_terms, terms_to_prompt_text
from whisper_ja.data.manifest import Utterance, read_manifest
from whisper_ja.evaluation.compare import compare_runs
from whisper_ja.evaluation.longform import evaluate_longform
from whisper_ja.evaluation.plots import plot_before_after, plot_groups, plot_training_curves
from whisper_ja.evaluation.report import (
    COUNT_KEYS,
    METRICS,
    HypothesisRecord,
    Report,
    build_report,
    write_hypotheses,
    write_report,
)
from whisper_ja.evaluation.retention.measure import RetentionSettings
from whisper_ja.evaluation.retention.suite import run_retention_suite
from whisper_ja.inference.clips import BatchDecoding
from whisper_ja.inference.engine import Engine, load_engine
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.model.record import read_record
from whisper_ja.text.metrics import utterance_counts
from whisper_ja.text.terms import TermFileError, load_terms, term_recall

__all__ = ["EvaluateConfig", "evaluate",
           "score_utterances"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of ``whisper-ja evaluate``."""

    manifest: Path | None = field(
        None, help="test manifest (JSONL of Utterance records); required for suite ja; for "
        "suite retention, default: a synthesized non-Japanese set")
    model: str = field("openai/whisper-base", help="hub id, local model folder or CT2 folder")
    adapter: Path | None = field(None, help="PEFT (LoRA) adapter folder applied on the model")
    out: Path = field(Path("eval_out"), help="output folder for hypotheses, report and plots")
    label: str = field("", help="name of this run in reports (default: model [+ adapter])")
    normalizer: Literal["default", "reazonspeech", "kotoba", "paper"] = field(
        "default", help="text normalization applied to reference and hypothesis before scoring")
    terms: Path | None = field(None, help="term file (one per line, optional TAB reading): "
                               "report term recall")
    prompt_terms: Path | None = field(
        None, help="term file given to the decoder as Whisper's previous-text prompt "
        "(contextual biasing); its terms are also scored for recall unless --terms is given")
    suite: Literal["ja", "retention", "longform"] = field(
        "ja", help="ja: Japanese test manifest; retention: non-Japanese speech before/after "
        "adaptation (forgetting check, whisper_ja.evaluation.retention.measure); longform: "
        "long recordings with reference segments (whisper_ja.evaluation.longform)")
    baseline: str | None = field(
        None, help="suite retention: the 'before' model (e.g. openai/whisper-base for a full "
        "fine-tune); default: the model without its adapter")
    compare: Path | None = field(
        None, help="earlier evaluate output folder to compare with (suite retention: an "
        "earlier retention run, e.g. the same training without mixing)")
    train_run: Path | None = field(None, help="training run folder (log.jsonl) to plot curves")
    bootstrap: int = field(1000, help="bootstrap resamples for confidence intervals")
    seed: int = field(0, help="bootstrap seed")
    limit: int = field(0, help="evaluate only the first N utterances (0 = all)")
    worst: int = field(10, help="how many worst utterances to list")
    progress: bool = field(True, help="show a progress bar")
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings, inline=True,
                                     help="backend, device and precision (as transcribe)")
    decoding: DecodingOptions = field(default_factory=DecodingOptions, inline=True,
                                      help="how to decode (as transcribe)")

    def __post_init__(self) -> None:
        checks = {"bootstrap": self.bootstrap >= 10, "limit": self.limit >= 0,
                  "worst": self.worst >= 0}
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{name}: out of range ({getattr(self, name)!r})")


def _counts(errors: Any) -> dict[str, int]:
    return {key: int(getattr(errors, key)) for key in COUNT_KEYS}


def score_utterances(utts: Sequence[Utterance], results: Sequence[Any],
                     normalizer: str = "default") -> list[HypothesisRecord]:
    """Score each utterance: CER, WER and reading CER edit counts against its reference."""
    refs = [utt.text for utt in utts]
    hyps = [result.text for result in results]
    per_metric = {m: utterance_counts(refs, hyps, m, normalizer) for m in METRICS}  # type: ignore[arg-type]
    records = []
    for i, (utt, result) in enumerate(zip(utts, results, strict=True)):
        records.append(HypothesisRecord(
            id=utt.id, ref=utt.text, hyp=result.text, cer=float(per_metric["cer"][i].rate),
            looped=bool(result.looped), corpus=utt.corpus, speaker=utt.speaker,
            duration=utt.duration, counts={m: _counts(per_metric[m][i]) for m in METRICS}))
    return records


def _term_recall(records: Sequence[HypothesisRecord], terms_file: Path,
                 normalizer: str) -> dict[str, Any]:

    try:
        terms = load_terms(terms_file)
    except TermFileError as err:
        raise ConfigError(f"terms: {err}") from err
    result = term_recall([r.ref for r in records], [r.hyp for r in records], terms,
                         normalizer=normalizer)
    return {"file": str(terms_file), **result.to_dict()}


def _model_and_adapter(config: EvaluateConfig) -> tuple[str, Path | None]:
    """Accept a training output folder holding an adapter as ``--model`` too.

    Such a folder has ``adapter_config.json`` but no ``config.json``; its base model is the one
    recorded by ``train`` (``whisper_ja.json``) or by peft (``adapter_config.json``).
    """
    folder = Path(config.model)
    if (config.adapter is not None or not (folder / "adapter_config.json").is_file()
            or (folder / "config.json").is_file()):
        return config.model, config.adapter
    record = read_record(folder)
    if record is not None and record.base_model:
        return record.base_model, folder
    peft = folder / "adapter_config.json"
    try:
        base = json.loads(peft.read_text(encoding="utf-8-sig")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as err:
        raise ConfigError(f"model: {peft} is unreadable ({err})") from err
    if base:
        return str(base), folder
    raise ConfigError(f"model: {folder} holds an adapter but names no base model; "
                      "pass --model BASE --adapter FOLDER")


def _prompt(config: EvaluateConfig, engine: Engine) -> tuple[int, ...] | None:
    """``--prompt-terms`` as previous-text ids; None: ``initial_prompt``'s (often none)."""
    if config.prompt_terms is None:
        return None
    try:
        terms = read_terms(config.prompt_terms)
    except TermFileError as err:
        raise ConfigError(f"prompt_terms: {err}") from err
    return engine.prompt_ids(terms_to_prompt_text(terms))


def _engine(config: EvaluateConfig) -> tuple[Engine, Path | None]:
    """The model to evaluate on its backend, and its adapter (if any)."""
    model, adapter = _model_and_adapter(config)
    if adapter is not None and not adapter.is_dir():
        raise ConfigError(f"adapter: folder {adapter} does not exist")
    engine = load_engine(model, str(adapter) if adapter else None, config.runtime,
                         config.decoding)
    return engine, adapter


def evaluate(config: EvaluateConfig) -> Report:
    """Decode ``config.manifest`` and write hypotheses, report and plots to ``config.out``.

    Raises:
        ConfigError: missing manifest, adapter, terms or comparison folder.
        whisper_ja.audio.io.AudioError: an audio file cannot be read (names the file).
    """
    if config.suite == "retention":
        return _retention(config)
    if config.suite == "longform":
        return evaluate_longform(config)
    if config.manifest is None:
        raise ConfigError("manifest: a test manifest is required (--manifest FILE)")
    if not config.manifest.is_file():
        raise ConfigError(f"manifest: file {config.manifest} does not exist")
    if config.compare is not None and not (config.compare / "hypotheses.jsonl").is_file():
        raise ConfigError(f"compare: {config.compare} is not an evaluate output folder "
                          "(no hypotheses.jsonl)")
    utts = read_manifest(config.manifest)
    if config.limit:
        utts = utts[:config.limit]
    if not utts:
        raise ConfigError(f"manifest: {config.manifest} holds no utterances")
    engine, adapter = _engine(config)
    log.info("evaluate: %d utterances, %s, context %s, %s", len(utts),
             "greedy" if config.decoding.beams == 1 else f"beam {config.decoding.beams}",
             engine.context, engine.source)
    decoded = engine.decode_utterances(utts, language=config.decoding.language,
                                       prompt=_prompt(config, engine), progress=config.progress)
    # Utterances whose audio cannot be read are named, counted and left out (exit 1).
    kept = [u for u, r in zip(utts, decoded.results, strict=True) if r is not None]
    if not kept:
        raise AudioError(f"manifest: no audio of {config.manifest} could be read, e.g. "
                         f"{next(iter(decoded.failed.values()))}")
    records = score_utterances(kept, decoded.decoded(), config.normalizer)
    return _write_outputs(config, records, engine.source, adapter, engine.context, decoded)


def _retention(config: EvaluateConfig) -> Report:
    """``--suite retention``: the forgetting check, with this command's settings.

    Device, precision, seed and bootstrap are passed on; each model is decoded with its own
    saved context policy.
    """
    model, adapter = _model_and_adapter(config)
    settings = RetentionSettings(options=config.decoding, runtime=config.runtime,
                                 seed=config.seed, n_resamples=config.bootstrap,
                                 progress=config.progress)
    data = run_retention_suite(model, adapter, config.out, baseline=config.baseline,
                               manifest=config.manifest, compare=config.compare,
                               limit=config.limit or None, settings=settings)
    return Report(out_dir=config.out, data=data)


def _write_outputs(config: EvaluateConfig, records: list[HypothesisRecord], source: str,
                   adapter: Path | None, context: str, decoded: BatchDecoding) -> Report:

    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    write_hypotheses(out / "hypotheses.jsonl", records)
    save_config(config, out / "evaluate_config.yaml")
    label = config.label or (f"{config.model} + adapter" if adapter else config.model)
    meta = {
        "label": label, "model": source, "adapter": str(adapter) if adapter else None,
        "manifest": str(config.manifest), "normalizer": config.normalizer, "suite": config.suite,
        "decoding": ("greedy" if config.decoding.beams == 1
                     else f"beam search ({config.decoding.beams})")
        + f", max {config.decoding.max_new_tokens} tokens, {source}"
        + (f", prompt from {config.prompt_terms}" if config.prompt_terms else ""),
        "context": context,
        "device": config.runtime.device, "torch_threads": torch.get_num_threads(),
        "decode_seconds": round(decoded.seconds, 3), "config": config_to_dict(config),
        "failed": decoded.failed,
        # Loops the greedy decoder ran into before the guards stopped or replaced them.
        "looped_unguarded": sum(r.looped_unguarded for r in decoded.decoded()),
        # Chunks Whisper's silence rule emptied although their audio was not quiet.
        "silent_chunks": sum(r.silent_chunks for r in decoded.decoded()),
    }
    report = build_report(records, meta=meta, n_resamples=config.bootstrap, seed=config.seed,
                          worst=config.worst)
    terms_file = config.terms or config.prompt_terms
    if terms_file is not None:
        report["term_recall"] = _term_recall(records, terms_file, config.normalizer)
    plots = plot_groups(report, out)
    if config.compare is not None:
        report["comparison"] = compare_runs(records, config.compare, normalizer=config.normalizer,
                                            n_resamples=config.bootstrap, seed=config.seed)
        plots += plot_before_after(report["comparison"], out, this_name=label,
                                   synthetic=report["synthetic"])
    if config.train_run is not None:
        plots += plot_training_curves(config.train_run, out)
    report["plots"] = plots
    write_report(report, out)
    return Report(out_dir=out, data=report)
