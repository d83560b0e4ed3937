"""The rank sweep's table and plot, and the choice of the smallest near-best rank.

Kept apart from :mod:`whisper_ja.training.sweep.driver` (which trains and evaluates) so that the
report can be
rebuilt from finished runs and tested without training anything.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SweepRow", "select_rank", "sweep_markdown", "write_sweep_report"]


@dataclass(frozen=True)
class SweepRow:
    """One line of the sweep table.

    Attributes:
        name: Run name: ``untouched``, ``rank-R`` or ``full``.
        kind: ``untouched``, ``lora`` or ``full``.
        rank: LoRA rank (None for the others).
        trainable_params: Parameters updated by training.
        total_params: All parameters of the model.
        peak_memory_mb: Peak memory of the training process (RSS on CPU, allocated on GPU), MiB.
        time_per_step_s: Wall time per optimizer step, seconds.
        steps: Optimizer steps run.
        validation: CER on the validation manifest: ``{"rate", "low", "high"}`` (95% CI).
        test: CER on the test manifest, same form.
    """

    name: str
    kind: str
    rank: int | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    peak_memory_mb: float | None = None
    time_per_step_s: float | None = None
    steps: int | None = None
    validation: dict[str, Any] | None = None
    test: dict[str, Any] | None = None

    @classmethod
    def untouched(cls, scores: dict[str, dict[str, Any] | None]) -> SweepRow:
        """The reference row of the model before any training."""
        return cls(name="untouched", kind="untouched", trainable_params=0, steps=0,
                   validation=scores.get("validation"), test=scores.get("test"))

    @classmethod
    def from_run(cls, name: str, summary: dict[str, Any],
                 scores: dict[str, dict[str, Any] | None]) -> SweepRow:
        """A row from a run's ``summary.json`` and its evaluation scores."""
        steps = int(summary.get("steps") or 0)
        per_step = summary.get("time_per_step_s")
        if per_step is None and steps and summary.get("train_time_s") is not None:
            per_step = float(summary["train_time_s"]) / steps
        return cls(name=name, kind="full" if name == "full" else "lora",
                   rank=None if name == "full" else int(name.removeprefix("rank-")),
                   trainable_params=summary.get("trainable_params"),
                   total_params=summary.get("total_params"),
                   peak_memory_mb=summary.get("peak_memory_mb"),
                   time_per_step_s=None if per_step is None else round(float(per_step), 3),
                   steps=steps, validation=scores.get("validation"), test=scores.get("test"))

    def score(self, split: str) -> dict[str, Any] | None:
        """CER entry of ``split`` (``validation`` or ``test``)."""
        return self.validation if split == "validation" else self.test


def select_rank(rows: Sequence[SweepRow], select_on: str) -> tuple[str | None, str | None]:
    """The best LoRA run and the smallest rank within the best run's interval.

    The best run has the lowest CER on ``select_on``; a rank qualifies when its CER is at most
    the upper end of the best run's 95% interval. Returns ``(best, recommended)`` run names,
    ``(None, None)`` when no LoRA run has a score.
    """
    scored = [r for r in rows if r.kind == "lora" and r.score(select_on) is not None]
    if not scored:
        return None, None
    rates = {r.name: float(r.score(select_on)["rate"]) for r in scored}  # type: ignore[index]
    best = min(scored, key=lambda r: (rates[r.name], r.rank))
    high = float(best.score(select_on)["high"])  # type: ignore[index]
    # A degenerate interval (one utterance: NaN, or not containing its own rounded value)
    # falls back to the best value itself.
    ceiling = rates[best.name] if math.isnan(high) else max(high, rates[best.name])
    smallest = min((r for r in scored if rates[r.name] <= ceiling), key=lambda r: r.rank or 0)
    return best.name, smallest.name


def _cer(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    return f"{100 * entry['rate']:.2f} [{100 * entry['low']:.2f}, {100 * entry['high']:.2f}]"


def _num(value: Any, fmt: str = "{:,}") -> str:
    return "-" if value is None else fmt.format(value)


def sweep_markdown(rows: Sequence[SweepRow], *, best: str | None, recommended: str | None,
                   select_on: str, command: str, synthetic: bool) -> str:
    """The sweep table in Markdown, with the recommendation and the command that made it."""
    tag = " (synthetic speech)" if synthetic else ""
    lines = [f"# LoRA rank sweep{tag}", ""]
    if command:
        lines += ["Made by:", "", "```", command, "```", ""]
    lines += ["| run | trainable params | peak memory (MiB) | time/step (s) | steps | "
              "validation CER % [95% CI] | test CER % [95% CI] |",
              "|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        mark = " (best)" if r.name == best else ""
        mark += " (recommended)" if r.name == recommended else ""
        lines.append(f"| {r.name}{mark} | {_num(r.trainable_params)} "
                     f"| {_num(r.peak_memory_mb, '{:,.0f}')} "
                     f"| {_num(r.time_per_step_s, '{:.2f}')} | {_num(r.steps)} "
                     f"| {_cer(r.validation)} | {_cer(r.test)} |")
    lines.append("")
    if recommended:
        lines.append(f"Smallest rank whose {select_on} CER lies within the 95% interval of the "
                     f"best rank ({best}): **{recommended}**.")
    else:
        lines.append(f"No LoRA run has a {select_on} CER, so no rank is recommended.")
    lines.append("Peak memory is the training process's peak (RSS on CPU, allocated memory on "
                 "GPU); time per step is train's own measure (training wall time over optimizer "
                 "steps). On a shared machine both time and memory move with the neighbours.")
    return "\n".join(lines) + "\n"


def _plot(rows: Sequence[SweepRow], path: Path, *, synthetic: bool) -> None:
    # Imported here, not at the top: matplotlib takes seconds to import; only plotting needs it.
    import matplotlib

    matplotlib.use("Agg")
    # Imported here, not at the top: matplotlib takes seconds to import; only plotting needs it.
    import matplotlib.pyplot as plt

    lora = sorted((r for r in rows if r.kind == "lora"), key=lambda r: r.rank or 0)
    ranks = [r.rank for r in lora]
    fig, (ax_cer, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    for split, color in (("validation", "tab:blue"), ("test", "tab:orange")):
        pts = [(r.rank, e) for r in lora if (e := r.score(split)) is not None]
        if pts:
            xs, ys = [p[0] for p in pts], [100 * p[1]["rate"] for p in pts]
            err = [[y - 100 * p[1]["low"] for y, p in zip(ys, pts, strict=True)],
                   [100 * p[1]["high"] - y for y, p in zip(ys, pts, strict=True)]]
            ax_cer.errorbar(xs, ys, yerr=err, marker="o", capsize=4, color=color,
                            label=f"LoRA, {split}")
        for ref, style in (("untouched", ":"), ("full", "--")):
            entry = next((r.score(split) for r in rows if r.kind == ref and r.score(split)),
                         None)
            if entry is not None:
                ax_cer.axhline(100 * entry["rate"], linestyle=style, color=color, alpha=0.7,
                               label=f"{ref}, {split}")
    ax_cer.set_xscale("log", base=2)
    ax_cer.set_xticks(ranks, [str(r) for r in ranks])
    ax_cer.set(xlabel="LoRA rank", ylabel="CER % (95% CI)",
               title="CER by rank" + (" (synthetic speech)" if synthetic else ""))
    ax_cer.legend(fontsize=7)
    mem = [(r.rank, r.peak_memory_mb) for r in lora if r.peak_memory_mb is not None]
    if mem:
        ax_mem.plot([m[0] for m in mem], [m[1] for m in mem], marker="s", color="tab:green",
                    label="peak memory (MiB)")
    ax_mem.set_xscale("log", base=2)
    ax_mem.set_xticks(ranks, [str(r) for r in ranks])
    ax_mem.set(xlabel="LoRA rank", ylabel="peak memory (MiB)", title="Cost by rank")
    ax_time = ax_mem.twinx()
    times = [(r.rank, r.time_per_step_s) for r in lora if r.time_per_step_s is not None]
    if times:
        ax_time.plot([t[0] for t in times], [t[1] for t in times], marker="^",
                     color="tab:red", label="time per step (s)")
    ax_time.set_ylabel("time per step (s)")
    handles = ax_mem.get_legend_handles_labels()[0] + ax_time.get_legend_handles_labels()[0]
    if handles:
        ax_mem.legend(handles=handles, fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_sweep_report(rows: Sequence[SweepRow], out: Path, *, best: str | None,
                       recommended: str | None, select_on: str, command: str = "",
                       synthetic: bool = False) -> dict[str, Path]:
    """Write ``sweep.json``, ``sweep.md``, ``sweep.csv`` and ``sweep.png`` to ``out``.

    Returns:
        The written files by kind (``json``, ``markdown``, ``csv``, ``plot``).
    """
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "sweep.json", "markdown": out / "sweep.md", "csv": out / "sweep.csv",
             "plot": out / "sweep.png"}
    data = {"command": command, "synthetic": synthetic, "select_on": select_on, "best": best,
            "recommended": recommended, "rows": [dataclasses.asdict(r) for r in rows]}
    files["json"].write_text(json.dumps(data, indent=2), encoding="utf-8")
    files["markdown"].write_text(
        sweep_markdown(rows, best=best, recommended=recommended, select_on=select_on,
                       command=command, synthetic=synthetic), encoding="utf-8")
    with files["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "rank", "trainable_params", "peak_memory_mb", "time_per_step_s",
                         "steps", "val_cer", "val_low", "val_high", "test_cer", "test_low",
                         "test_high"])
        for r in rows:
            writer.writerow([r.name, r.rank, r.trainable_params, r.peak_memory_mb,
                             r.time_per_step_s, r.steps,
                             *(_triple(r.validation)), *(_triple(r.test))])
    _plot(rows, files["plot"], synthetic=synthetic)
    return files


def _triple(entry: dict[str, Any] | None) -> list[Any]:
    return [None, None, None] if entry is None else [entry["rate"], entry["low"], entry["high"]]
