"""PNG plots of evaluation reports (matplotlib, Agg backend: no display needed).

- ``cer_by_group.png``: CER per corpus and per speaker/voice with 95% intervals;
- ``cer_before_after.png``: the same groups before and after, in compare mode;
- ``training_curves.png``: loss and validation metrics of a training run's ``log.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows

import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_before_after", "plot_groups", "plot_training_curves"]

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


def _read_log(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON: {err.msg}") from err
    return rows


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
    rows = [r for r in _read_log(log_file)
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
