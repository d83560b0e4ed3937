"""``whisper-ja evaluate``: its settings and ``run()``."""

from __future__ import annotations

from whisper_ja.evaluation.report import METRICS, Report
from whisper_ja.evaluation.runner import EvaluateConfig, evaluate

__all__ = ["Settings", "run"]

Settings = EvaluateConfig
"""The settings of ``whisper-ja evaluate`` (flags and YAML keys)."""


def _print_summary(report: Report) -> None:
    data = report.data
    if data.get("suite") == "retention":
        print(f"retention suite (SYNTHETIC speech): report {report.out_dir / 'report.md'}")
        return
    if data.get("suite") == "longform":
        print((report.out_dir / "report.md").read_text(encoding="utf-8"), end="")
        return
    tag = "  [SYNTHETIC speech]" if data["synthetic"] else ""
    print(f"{data['label']}{tag}: {data['overall']['utterances']} utterances")
    for metric in METRICS:
        m = data["overall"][metric]
        print(f"  {metric:<12} {100 * m['rate']:6.2f} %  (95% CI {100 * m['low']:.2f}"
              f"–{100 * m['high']:.2f})")
    print(f"  looped       {data['overall']['looped']}")
    if data.get("rtf") is not None:
        print(f"  RTF          {data['rtf']:.3f}")
    if data.get("comparison"):
        d = data["comparison"]["metrics"]["cer"]
        print(f"  CER vs {data['comparison']['other']}: {100 * d['delta']:+.2f} points "
              f"(95% CI {100 * d['low']:+.2f} to {100 * d['high']:+.2f})")
    print(f"  report: {report.out_dir / 'report.md'}")


def run(config: EvaluateConfig) -> int:
    """Entry point of ``whisper-ja evaluate``: evaluate, print a summary, return 0."""
    _print_summary(evaluate(config))
    return 0
