"""``whisper-ja score``: its settings and ``run()``."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from whisper_ja.errors import EXIT_ITEMS_FAILED, EXIT_OK
from whisper_ja.text.score import ScoreConfig, score

__all__ = ["Settings", "run"]

Settings = ScoreConfig
"""The settings of ``whisper-ja score`` (flags and YAML keys)."""


def _print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"whisper-ja score ({report['normalizer']} normalizer)")
    for column in ("metric", "rate", "interval", "S", "D", "I", "N", "utt. mean"):
        table.add_column(column, justify="left" if column == "metric" else "right",
                         no_wrap=True)
    for name, m in report["metrics"].items():
        interval = (f"{m['ci_low']:.3f}-{m['ci_high']:.3f}" if "ci_low" in m else "-")
        table.add_row(name, f"{m['rate']:.4f}", interval, str(m["substitutions"]),
                      str(m["deletions"]), str(m["insertions"]), str(m["reference_length"]),
                      f"{m['mean_utterance_rate']:.4f}")
    console.print(table)
    console.print("S/D/I: substitutions, deletions, insertions; N: reference units; rate: "
                  "corpus-level (S+D+I)/N; utt. mean: mean of per-utterance rates")
    c = report["counts"]
    console.print(f"{c['scored']} scored of {c['references']} references; "
                  f"{c['missing']} missing hypotheses ({report['missing_policy']}), "
                  f"{c['extra']} extra hypotheses (not scored), "
                  f"{c['empty_references']} empty references (not scored)")
    for label, key in (("missing", "missing_ids"), ("extra", "extra_ids")):
        if report[key]:
            shown = ", ".join(report[key][:10])
            more = f" ... and {len(report[key]) - 10} more" if len(report[key]) > 10 else ""
            console.print(f"  {label} ids: {shown}{more}")
    if report["baseline"]:
        for name, r in report["baseline"]["delta"].items():
            verdict = "significant" if r["significant"] else "not significant"
            console.print(f"{name}: hyp - baseline = {r['delta']:+.4f} "
                          f"({r['confidence']:.0%} CI {r['low']:+.4f}..{r['high']:+.4f}, "
                          f"{verdict})")
    if report["terms"]:
        t = report["terms"]
        recall = "n/a" if t["recall"] is None else f"{t['recall']:.3f}"
        heard = "n/a" if t["reading_recall"] is None else f"{t['reading_recall']:.3f}"
        console.print(f"term recall {recall} (by reading {heard}) over {t['occurrences']} "
                      f"occurrences; {len(t['absent'])} terms absent from the references")


def run(config: ScoreConfig) -> int:
    """Entry point of ``whisper-ja score``: print the table, write JSON; exit code.

    A missing or malformed input file raises ``InputError`` (exit 1, one line). A reference
    whose text is empty is left out of the scores and named on stderr: exit 1.
    """
    console = Console()
    report = score(config)
    _print_report(report, console)
    if config.out is not None:
        config.out.parent.mkdir(parents=True, exist_ok=True)
        config.out.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n",
                              encoding="utf-8")
        console.print(f"report written to {config.out}")
    empty: dict[str, str] = report["empty_reference_ids"]
    for uid, where in empty.items():
        print(f"whisper-ja score: bad input: {where}: id {uid!r} has an empty reference text "
              "(not scored)", file=sys.stderr)
    if empty:
        print(f"whisper-ja score: {len(empty)} of {report['counts']['references']} "
              "reference(s) left out (empty text)", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK
