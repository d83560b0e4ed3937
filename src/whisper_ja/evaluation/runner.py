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
from whisper_ja.data.domain import read_terms, terms_to_prompt_ids
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
from whisper_ja.inference.batch import BatchDecoding
from whisper_ja.inference.clip_decoders import ClipDecoder, Ct2Decoder, TransformersDecoder
from whisper_ja.inference.ct2_clips import Ct2Options
from whisper_ja.inference.decoding import CLIP_MAX_TOKENS, WINDOW_MAX_TOKENS, DecodeOptions
from whisper_ja.inference.guards import GuardSettings
from whisper_ja.inference.longform import LongformOptions
from whisper_ja.inference.quantize import quantize_linear_int8
from whisper_ja.model import load_model
from whisper_ja.model.context import apply_saved_context, enable_dynamic_context, saved_policy
from whisper_ja.model.device import (
    CT2_COMPUTE_TYPES,
    DEVICE_HELP,
    DTYPE_HELP,
    DtypeName,
    check_device,
    resolve_device,
    resolve_dtype,
)
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
    backend: Literal["transformers", "ct2"] = field(
        "transformers", help="transformers, or ct2 (suites ja and longform: CTranslate2 as "
        "whisper-ja's ct2 paths run it, guards on; model and baseline = CTranslate2 folders, "
        "e.g. from `whisper-ja export --to ct2`)")
    compute_type: str = field("int8", help="backend ct2: CTranslate2 compute type (int8 is "
                              "fastest on CPU, int8_float16 on a GPU)")
    adapter: Path | None = field(None, help="PEFT (LoRA) adapter folder applied on the model")
    out: Path = field(Path("eval_out"), help="output folder for hypotheses, report and plots")
    label: str = field("", help="name of this run in reports (default: model [+ adapter])")
    num_beams: int = field(1, help="beam width; 1 = greedy decoding")
    batch_size: int = field(8, help="utterances decoded together")
    max_new_tokens: int = field(
        0, help="longest transcript in tokens; 0 = per suite: 128 per clip (ja, retention), "
                "224 per 30 s window (longform)")
    context: Literal["auto", "dynamic", "full"] = field(
        "auto", help="encoder input: auto = dynamic if the model was fine-tuned with dynamic "
        "context, else full (30 s); dynamic = shortened to the batch's longest clip")
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
    guards: GuardSettings = field(default_factory=GuardSettings,
                                  help="repetition guard and temperature fallback")
    longform: LongformOptions = field(default_factory=LongformOptions,
                                      help="suite longform: how recordings are cut and decoded")
    bootstrap: int = field(1000, help="bootstrap resamples for confidence intervals")
    seed: int = field(0, help="bootstrap seed")
    limit: int = field(0, help="evaluate only the first N utterances (0 = all)")
    worst: int = field(10, help="how many worst utterances to list")
    bf16: bool = field(False, help="decode with bf16 weights (faster on CPUs and GPUs with "
                       "bf16 units; transcripts may differ slightly from float32)")
    int8: bool = field(False, help="CPU: decode with int8 dynamic-quantized linear layers "
                       "(~2x faster at unchanged CER in benchmarks/decode_speed.py; "
                       "transcripts may differ slightly from float32)")
    device: str = field("auto", help=DEVICE_HELP)
    dtype: DtypeName = field("auto", help=DTYPE_HELP + "; --bf16 means bfloat16")
    progress: bool = field(True, help="show a progress bar")

    @property
    def token_limit(self) -> int:
        """``max_new_tokens``, or the suite's own limit when it is 0."""
        if self.max_new_tokens:
            return self.max_new_tokens
        return WINDOW_MAX_TOKENS if self.suite == "longform" else CLIP_MAX_TOKENS

    def __post_init__(self) -> None:
        check_device(self.device)
        checks = {
            "num_beams": self.num_beams >= 1,
            "batch_size": self.batch_size >= 1,
            "max_new_tokens": 0 <= self.max_new_tokens <= 440,
            "bootstrap": self.bootstrap >= 10,
            "limit": self.limit >= 0,
            "worst": self.worst >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"{name}: out of range ({getattr(self, name)!r})")
        if self.compute_type not in CT2_COMPUTE_TYPES:
            raise ConfigError(f"compute_type: must be one of {', '.join(CT2_COMPUTE_TYPES)}, "
                              f"got {self.compute_type!r}")
        if self.backend == "ct2":
            self._check_ct2()

    def _check_ct2(self) -> None:
        """What backend ct2 cannot do is refused by name."""
        if self.suite == "retention":
            raise ConfigError("backend: ct2 runs suites ja and longform, not retention")
        if self.adapter is not None:
            raise ConfigError("adapter: not supported with backend ct2 (export a merged model "
                              "with 'whisper-ja export --to ct2' first)")
        for name in ("prompt_terms", "int8", "bf16"):
            if getattr(self, name):
                raise ConfigError(f"{name}: not supported with backend ct2 (--compute-type "
                                  "sets CTranslate2's precision)")


def _context_mode(model: Any, requested: str, adapter: Path | None) -> str:
    """``dynamic`` or ``full``: the encoder input the model is decoded with.

    ``auto`` follows how the model was fine-tuned (the flag in its config, or the marker that
    whisper-ja writes next to an adapter); a stock model keeps Whisper's 30 s window.
    """
    if requested == "auto":
        return "dynamic" if apply_saved_context(model, adapter) else "full"
    if requested == "dynamic":
        enable_dynamic_context(model)
    return requested


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
    for name, key in (("whisper_ja.json", "base_model"),
                      ("adapter_config.json", "base_model_name_or_path")):
        meta = folder / name
        if meta.is_file():
            base = json.loads(meta.read_text(encoding="utf-8")).get(key)
            if base:
                return str(base), folder
    raise ConfigError(f"model: {folder} holds an adapter but names no base model; "
                      "pass --model BASE --adapter FOLDER")


def _load(config: EvaluateConfig) -> tuple[Any, Path | None]:

    model, adapter = _model_and_adapter(config)
    if adapter is not None and not adapter.is_dir():
        raise ConfigError(f"adapter: folder {adapter} does not exist")
    device, dtype = _device_and_dtype(config)
    if config.int8 and device.type != "cpu":
        raise ConfigError(f"int8: int8 dynamic quantization runs on the CPU only, not {device}")
    loaded = load_model(model, adapter=adapter, device=device, dtype=dtype)
    if config.int8:
        merged = loaded.model.merge_and_unload() if hasattr(loaded.model, "peft_config") \
            else loaded.model
        loaded.model = quantize_linear_int8(merged, inplace=True)
    return loaded, adapter


def _device_and_dtype(config: EvaluateConfig) -> tuple[torch.device, torch.dtype]:
    """The device and weight dtype ``config`` asks for (``auto``: the GPU and bf16 there)."""
    device = resolve_device(config.device)
    return device, torch.bfloat16 if config.bf16 else resolve_dtype(config.dtype, device)


def _decode_options(config: EvaluateConfig, processor: Any) -> Any:

    prompt: tuple[int, ...] = ()
    if config.prompt_terms is not None:
        try:
            prompt = terms_to_prompt_ids(read_terms(config.prompt_terms), processor.tokenizer)
        except TermFileError as err:
            raise ConfigError(f"prompt_terms: {err}") from err
    return DecodeOptions(num_beams=config.num_beams, max_new_tokens=config.token_limit,
                         batch_size=config.batch_size, prompt_ids=prompt, guards=config.guards)


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
    decoder, source, adapter = _decoder(config)
    log.info("evaluate: %d utterances, %s, context %s, backend %s", len(utts),
             "greedy" if config.num_beams == 1 else f"beam {config.num_beams}", decoder.context,
             config.backend)
    decoded = decoder.decode(utts, "ja")
    # Utterances whose audio cannot be read are named, counted and left out (exit 1).
    kept = [u for u, r in zip(utts, decoded.results, strict=True) if r is not None]
    if not kept:
        raise AudioError(f"manifest: no audio of {config.manifest} could be read, e.g. "
                         f"{next(iter(decoded.failed.values()))}")
    records = score_utterances(kept, decoded.decoded(), config.normalizer)
    return _write_outputs(config, records, source, adapter, decoder.context, decoded)


def _decoder(config: EvaluateConfig) -> tuple[ClipDecoder, str, Path | None]:
    """The model to evaluate on its backend, what it is, and its adapter (if any)."""
    if config.backend == "ct2":
        folder = Path(config.model).expanduser()
        options = Ct2Options(context=config.context, batch_size=config.batch_size,
                             beam_size=config.num_beams, max_new_tokens=config.token_limit,
                             compute_type=config.compute_type, device=config.device,
                             guards=config.guards)
        return Ct2Decoder(folder, options, config.progress), str(folder), None
    loaded, adapter = _load(config)
    context = _context_mode(loaded.model, config.context, adapter)
    policy = saved_policy(adapter, _local_folder(config.model))
    decoder = TransformersDecoder(loaded.model, loaded.processor,
                                  _decode_options(config, loaded.processor), policy,
                                  config.progress, mode="dynamic" if context == "dynamic"
                                  else "full")
    return decoder, f"{loaded.source}", adapter


def _local_folder(name: str) -> Path | None:
    return Path(name) if Path(name).is_dir() else None


def _retention(config: EvaluateConfig) -> Report:
    """``--suite retention``: the forgetting check, with this command's settings.

    Device, precision, seed and bootstrap are passed on; each model is decoded with its own
    saved context policy.
    """
    model, adapter = _model_and_adapter(config)
    device, dtype = _device_and_dtype(config)
    options = DecodeOptions(num_beams=config.num_beams, max_new_tokens=config.token_limit,
                            batch_size=config.batch_size, guards=config.guards)
    settings = RetentionSettings(options=options, seed=config.seed,
                                 n_resamples=config.bootstrap, progress=config.progress)
    data = run_retention_suite(model, adapter, config.out, baseline=config.baseline,
                               manifest=config.manifest, compare=config.compare,
                               limit=config.limit or None, settings=settings,
                               device=str(device), dtype=dtype)
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
        "decoding": ("greedy" if config.num_beams == 1 else f"beam search ({config.num_beams})")
        + f", max {config.token_limit} tokens" + (", bf16" if config.bf16 else "")
        + (", int8 linear layers" if config.int8 else "")
        + (f", CTranslate2 {config.compute_type}" if config.backend == "ct2" else "")
        + (f", prompt from {config.prompt_terms}" if config.prompt_terms else ""),
        "context": context,
        "device": config.device, "torch_threads": torch.get_num_threads(),
        "decode_seconds": round(decoded.seconds, 3), "config": config_to_dict(config),
        "failed": decoded.failed,
        # Loops the greedy decoder ran into before the guards stopped or replaced them.
        "looped_unguarded": sum(r.looped_unguarded for r in decoded.decoded()),
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
