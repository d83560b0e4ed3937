"""``evaluate --suite retention``: measure before and after, compare, write the reports.

Three comparisons answer "did Japanese fine-tuning make the model forget, and did mixing help":

- **after minus before**: the adapted model against the model it started from (the same model
  without its adapter, or ``baseline`` for a full fine-tune);
- **against an earlier run** (``compare``): this run's adapted model against the adapted model
  of an earlier retention report on the same utterances, e.g. a run trained with English mixed
  in against the same run without it. Negative WER deltas and positive language-ID deltas say
  that mixing limited forgetting.

Every number is on synthetic speech (espeak-ng) and labelled so. Output: ``report.md``,
``report.json``, ``hypotheses.jsonl`` and ``retention.png``.

Example:
    >>> run_retention_suite("openai/whisper-base", "runs/lora_mix", "out/retention_mix",
    ...                     compare="out/retention_nomix")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from whisper_ja.config import ConfigError
from whisper_ja.data.english import synthesize_retention_set
from whisper_ja.data.manifest import read_manifest
from whisper_ja.evaluation.plots import plot_retention
from whisper_ja.evaluation.retention.measure import (
    RetentionResult,
    RetentionSettings,
    compare_retention,
    measure_retention,
    result_from_records,
)
from whisper_ja.inference.engine import load_engine
from whisper_ja.jsonl import iter_json_objects

__all__ = ["load_adapted_result", "retention_markdown", "run_retention_suite"]

log = logging.getLogger(__name__)


def _fmt(value: tuple[float, float, float]) -> str:
    return f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def _changes_table(title: str, changes: dict[str, Any]) -> list[str]:
    lines = ["", f"## {title} (paired bootstrap, 95% CI)", "",
             "| language | WER forced: delta [CI] | WER identified: delta [CI] | "
             "language-ID accuracy: delta |", "|---|---|---|---|"]
    for language, c in changes.items():
        f, i = c["wer_forced"], c["wer_identified"]
        lines.append(f"| {language} | {f['delta']:+.3f} [{f['low']:+.3f}, {f['high']:+.3f}]"
                     f" | {i['delta']:+.3f} [{i['low']:+.3f}, {i['high']:+.3f}] "
                     f"| {c['lid_accuracy']['delta']:+.3f} |")
    return lines


def retention_markdown(results: Sequence[RetentionResult],
                       changes: dict[str, Any] | None = None,
                       comparison: dict[str, Any] | None = None) -> str:
    """A Markdown report of retention results and their differences.

    Args:
        results: One result per model (before, after), in table order.
        changes: :func:`compare_retention` of after against before, if measured.
        comparison: ``{"report", "model", "changes"}``: this run's adapted model against
            the adapted model of an earlier run, if asked for.
    """
    lines = ["# Retention check (synthetic speech: espeak-ng)", "",
             "| model | language | utterances | words | WER, language forced [95% CI] | "
             "WER, language identified [95% CI] | language-ID accuracy | detected |",
             "|---|---|---|---|---|---|---|---|"]
    for res in results:
        for lang in res.languages.values():
            detected = ", ".join(f"{k}: {v}" for k, v in lang.detected.items())
            lines.append(f"| {res.model} | {lang.language} | {lang.utterances} | {lang.words} "
                         f"| {_fmt(lang.wer_forced)} | {_fmt(lang.wer_identified)} "
                         f"| {lang.lid_accuracy:.3f} | {detected} |")
    if changes:
        lines += _changes_table("After minus before", changes)
    if comparison:
        lines += _changes_table(f"This run minus {comparison['model']} "
                                f"(from {comparison['report']})", comparison["changes"])
    return "\n".join(lines) + "\n"


def load_adapted_result(run_dir: str | Path) -> RetentionResult:
    """The adapted ("after") model's result of an earlier retention run, from its hypotheses.

    Raises:
        ConfigError: ``run_dir`` holds no retention ``hypotheses.jsonl``.
    """
    path = Path(run_dir) / "hypotheses.jsonl"
    if not path.is_file():
        raise ConfigError(f"compare: {run_dir} holds no retention hypotheses.jsonl")
    by_model: dict[str, list[dict[str, Any]]] = {}
    for _, record in iter_json_objects(path):
        if "forced_counts" not in record:
            raise ConfigError(f"compare: {path} is not from a retention run")
        by_model.setdefault(str(record.pop("model")), []).append(record)
    if not by_model:
        raise ConfigError(f"compare: {path} is empty")
    model, records = list(by_model.items())[-1]  # the report lists before, then after
    return result_from_records(model, records)


def _measure(model_name: str | Path, adapter: str | Path | None, utterances: list[Any],
             settings: RetentionSettings) -> RetentionResult:
    """One model loaded as ``evaluate`` loads it (same backend and settings), then measured."""
    label = f"{model_name} + {adapter}" if adapter else str(model_name)
    # No previous-text prompt: the suite decodes other languages than any prompt's.
    options = dataclasses.replace(settings.options, initial_prompt="")
    engine = load_engine(str(model_name), str(adapter) if adapter else None, settings.runtime,
                         options)
    return measure_retention(engine, utterances, settings=settings, label=label)


def _utterances(out: Path, manifest: str | Path | None, languages: Sequence[str],
                limit: int | None, progress: bool) -> tuple[Path, list[Any]]:
    if manifest is None:
        manifest = out / "retention_set" / "manifest.jsonl"
        if not manifest.is_file():
            synthesize_retention_set(manifest.parent, languages=languages, progress=progress)
    utterances = read_manifest(manifest)
    if limit is not None and limit < len(utterances):
        log.info("retention: using %d of %d utterances (limit)", limit, len(utterances))
        utterances = utterances[:limit]
    return Path(manifest), utterances


def run_retention_suite(model: str | Path, adapter: str | Path | None, out_dir: str | Path, *,
                        baseline: str | Path | None = None, manifest: str | Path | None = None,
                        compare: str | Path | None = None, languages: Sequence[str] = ("en",),
                        limit: int | None = None, settings: RetentionSettings | None = None,
                        ) -> dict[str, Any]:
    """Measure, compare, and write ``report.json``, ``report.md`` and ``hypotheses.jsonl``.

    "Before" is ``baseline`` when given, else ``model`` without the adapter; "after" is
    ``model`` with ``adapter``. With neither an adapter nor a baseline only ``model`` is
    measured.

    Args:
        model: Model name or folder (``load_model``).
        adapter: LoRA adapter folder of the adapted model, or None.
        out_dir: Output folder.
        baseline: Model to compare against (e.g. the untouched one for a full fine-tune).
        manifest: Non-Japanese test manifest; default: synthesize one with espeak-ng into
            ``out_dir/retention_set`` (reused when it exists).
        compare: An earlier retention output folder on the same utterances; its adapted model
            is compared with this run's (e.g. mixing against no mixing).
        languages: Languages of the synthesized set.
        limit: Use at most this many utterances (the first ones), for quick runs.
        settings: Decoding options and runtime, bootstrap seed and resamples, progress bars
            (each model's context policy is read from its folder).

    Returns:
        The report dict written to ``report.json``.

    Raises:
        ConfigError: ``compare`` is not a retention run, or was measured on other utterances.
    """
    settings = settings or RetentionSettings()
    progress = settings.progress
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    earlier = load_adapted_result(compare) if compare is not None else None  # fail early
    manifest, utterances = _utterances(out, manifest, languages, limit, progress)
    if earlier is not None and [r["id"] for r in earlier.records] != [u.id for u in utterances]:
        raise ConfigError(f"compare: {compare} was measured on other utterances than "
                         f"{manifest}; pass the same --manifest (and --limit)")
    after = _measure(model, adapter, utterances, settings)
    results, changes = [after], None
    before_model = baseline if baseline else model if adapter else None
    if before_model is not None:
        before = _measure(before_model, None, utterances, settings)
        results, changes = [before, after], compare_retention(before, after, settings)
    comparison = None
    if earlier is not None:
        comparison = {"report": str(compare), "model": earlier.model,
                      "changes": compare_retention(earlier, after, settings)}
    used = {"backend": settings.runtime.backend, "device": settings.runtime.device,
            "dtype": settings.runtime.dtype, "compute_type": settings.runtime.compute_type,
            "seed": settings.seed, "bootstrap": settings.n_resamples,
            "beams": settings.options.beams,
            "max_new_tokens": settings.options.max_new_tokens,
            "normalizer": "Whisper's EnglishTextNormalizer (en), BasicTextNormalizer (others)"}
    report = {"suite": "retention", "synthetic": True, "manifest": str(manifest),
              "settings": used,
              "models": [{"model": r.model, "languages": {k: dataclasses.asdict(v)
                                                          for k, v in r.languages.items()}}
                         for r in results],
              "changes": changes, "comparison": comparison}
    (out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2),
                                     encoding="utf-8")
    (out / "report.md").write_text(retention_markdown(results, changes, comparison)
                                   + "\n![retention](retention.png)\n", encoding="utf-8")

    plot_retention(report, out)
    with (out / "hypotheses.jsonl").open("w", encoding="utf-8") as handle:
        for res in results:
            for rec in res.records:
                handle.write(json.dumps({"model": res.model, **rec}, ensure_ascii=False) + "\n")
    return report
