"""PNG plots of evaluation reports (matplotlib, Agg backend: no display needed).

- ``cer_by_group.png``: CER per corpus and per speaker/voice with 95% intervals;
- ``cer_before_after.png``: the same groups before and after, in compare mode;
- ``training_curves.png``: loss and validation metrics of a training run's ``log.jsonl``;
- ``retention.png``: English (or other) WER and language-ID accuracy per model, from a
  retention report (``evaluate --suite retention``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows

import matplotlib.pyplot as plt  # noqa: E402

from whisper_ja.jsonl import iter_json_objects  # noqa: E402

__all__ = ["plot_before_after", "plot_groups", "plot_retention", "plot_training_curves"]

log = logging.getLogger(__name__)


def _title(report: Mapping[str, Any], text: str) -> str:
    return text + (" (SYNTHETIC speech)" if report.get("synthetic") else "")


def plot_groups(report: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Bar charts of CER per corpus and per speaker with 95% CI error bars.

    Returns:
        The file names written (relative to ``out_dir``).
    """
    panels = [(k, report[k]) for k in ("by_corpus", "by_speaker") if report.get(k)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 + 3 * len(panels), 4), squeeze=False)
    for ax, (key, groups) in zip(axes[0], panels, strict=True):
        names = list(groups)
        rates = [100 * groups[n]["cer"]["rate"] for n in names]
        lows = [100 * groups[n]["cer"]["low"] for n in names]
        highs = [100 * groups[n]["cer"]["high"] for n in names]
        errors = [[max(r - lo, 0) if not math.isnan(lo) else 0 for r, lo in zip(rates, lows,
                                                                                strict=True)],
                  [max(h - r, 0) if not math.isnan(h) else 0 for r, h in zip(rates, highs,
                                                                            strict=True)]]
        ax.bar(range(len(names)), rates, yerr=errors, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylabel("CER %")
        ax.set_title("per " + key.removeprefix("by_"))
    fig.suptitle(_title(report, f"CER of {report.get('label', '')}"))
    fig.tight_layout()
    fig.savefig(out_dir / "cer_by_group.png", dpi=100)
    plt.close(fig)
    return ["cer_by_group.png"]


def plot_before_after(comparison: Mapping[str, Any], out_dir: Path,
                      this_name: str = "this run", synthetic: bool = False) -> list[str]:
    """Grouped bars of CER per corpus and per speaker: the other run next to this one."""
    panels = [("overall", {"all": {"other": comparison["metrics"]["cer"]["other"],
                                   "this": comparison["metrics"]["cer"]["this"]}})]
    panels += [(k.removeprefix("by_"), comparison[k]) for k in ("by_corpus", "by_speaker")
               if comparison.get(k)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 + 3 * len(panels), 4), squeeze=False)
    width = 0.4
    for ax, (title, groups) in zip(axes[0], panels, strict=True):
        names = list(groups)
        xs = range(len(names))
        ax.bar([x - width / 2 for x in xs], [100 * groups[n]["other"] for n in names], width,
               label=str(comparison["other"]), color="tab:gray")
        ax.bar([x + width / 2 for x in xs], [100 * groups[n]["this"] for n in names], width,
               label=this_name, color="tab:green")
        ax.set_xticks(list(xs), names, rotation=30, ha="right")
        ax.set_ylabel("CER %")
        ax.set_title(title)
    axes[0][0].legend(fontsize="small")
    cer = comparison["metrics"]["cer"]
    suptitle = (f"CER before/after: {100 * cer['delta']:+.2f} points "
                f"(95% CI {100 * cer['low']:+.2f} to {100 * cer['high']:+.2f})")
    fig.suptitle(suptitle + (" (SYNTHETIC speech)" if synthetic else ""))
    fig.tight_layout()
    fig.savefig(out_dir / "cer_before_after.png", dpi=100)
    plt.close(fig)
    return ["cer_before_after.png"]


def plot_training_curves(run_dir: Path, out_dir: Path) -> list[str]:
    """Plot every numeric series of a training run's ``log.jsonl`` against its step.

    Training loss and validation metrics are logged at different steps, so each series is drawn
    from the rows that carry it. A run without ``log.jsonl`` is reported and yields no plot.
    """
    log_file = Path(run_dir) / "log.jsonl"
    if not log_file.is_file():
        log.warning("no %s: no training curves plotted", log_file)
        return []
    # Event rows (start, end) carry run facts, not curves; of the curves, show what a person
    # judges a run by: losses, error rates, learning rate, gradient norm.
    rows = [r for _, r in iter_json_objects(log_file)
            if isinstance(r.get("step"), int | float) and "event" not in r]
    wanted = ("loss", "cer", "wer", "lr", "grad_norm")
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if (any(w in key for w in wanted) and isinstance(value, int | float)
                    and not isinstance(value, bool)):
                series.setdefault(key, []).append((row["step"], float(value)))
    if not series:
        log.warning("%s holds no numeric series: no training curves plotted", log_file)
        return []
    names = sorted(series)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        steps, values = zip(*series[name], strict=True)
        ax.plot(steps, values, marker="." if len(steps) < 50 else None)
        ax.set_xlabel("step")
        ax.set_title(name)
    fig.suptitle(f"training run {Path(run_dir).name}")
    fig.tight_layout()
    fig.savefig(out_dir / "training_curves.png", dpi=100)
    plt.close(fig)
    return ["training_curves.png"]


def _retention_rows(report: Mapping[str, Any], language: str
                    ) -> list[tuple[str, list[float], list[list[float]] | None]]:
    """``(model, values, error bars)`` of WER forced, WER identified, language-ID accuracy.

    Order: the report's "before" model, the earlier run of a ``--compare`` (values only, no
    intervals), then the report's "after" model.
    """
    rows: list[tuple[str, list[float], list[list[float]] | None]] = []
    for entry in report["models"]:
        lang = entry["languages"].get(language)
        if lang is None:
            continue
        forced, identified = lang["wer_forced"], lang["wer_identified"]
        errors = [[forced[0] - forced[1], identified[0] - identified[1], 0.0],
                  [forced[2] - forced[0], identified[2] - identified[0], 0.0]]
        rows.append((entry["model"], [forced[0], identified[0], lang["lid_accuracy"]], errors))
    comparison = report.get("comparison")
    if comparison and language in comparison["changes"]:
        change = comparison["changes"][language]
        values = [change["wer_forced"]["before"], change["wer_identified"]["before"],
                  change["lid_accuracy"]["before"]]
        rows.insert(len(rows) - 1, (f"{comparison['model']} (compared run)", values, None))
    return rows


def plot_retention(report: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Grouped bars per language: WER forced, WER identified and language-ID accuracy per model.

    Returns:
        The file names written (relative to ``out_dir``).
    """
    languages = sorted({lang for m in report["models"] for lang in m["languages"]})
    metrics = ("WER, language forced", "WER, language identified", "language-ID accuracy")
    fig, axes = plt.subplots(1, len(languages), figsize=(9, 4.5), squeeze=False)
    for ax, language in zip(axes[0], languages, strict=True):
        rows = _retention_rows(report, language)
        width = 0.8 / len(rows)
        for i, (model, values, errors) in enumerate(rows):
            xs = [m + (i - (len(rows) - 1) / 2) * width for m in range(len(metrics))]
            ax.bar(xs, values, width, yerr=errors, capsize=3 if errors else 0, label=model)
        ax.set_xticks(range(len(metrics)), metrics)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{language} (95% intervals on WER)")
    axes[0][0].legend(fontsize="small")
    fig.suptitle(_title(report, "Retention of other languages"))
    fig.tight_layout()
    fig.savefig(out_dir / "retention.png", dpi=100)
    plt.close(fig)
    return ["retention.png"]
