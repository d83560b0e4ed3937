"""``whisper-ja evaluate``: its settings and ``run()``.

With ``gate.unseen`` / ``gate.retention`` set, evaluate also runs the versatility gate of
``train`` on the model (against the untouched model) and prints its one line; without
``--manifest`` it runs the gate only::

    whisper-ja evaluate --model openai/whisper-base --adapter runs/lora \
        gate.unseen=data/unseen/manifest.jsonl gate.retention=data/english_retention/manifest.jsonl
"""

from __future__ import annotations

import dataclasses
import json
import sys

from whisper_ja.config import field
from whisper_ja.errors import EXIT_ITEMS_FAILED, EXIT_OK
from whisper_ja.evaluation.report import METRICS, Report
from whisper_ja.evaluation.runner import EvaluateConfig, evaluate
from whisper_ja.training.gate import GateSettings

__all__ = ["EvaluateSettings", "Settings", "run"]


@dataclasses.dataclass(frozen=True)
class EvaluateSettings(EvaluateConfig):
    """Settings of ``whisper-ja evaluate``: the evaluation's, plus the versatility gate."""

    gate: GateSettings = field(default_factory=GateSettings,
                               help="versatility gate: judge the model against the untouched "
                                    "one on these check sets (written to OUT/gate.json)")


Settings = EvaluateSettings
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


def _gate(config: EvaluateSettings) -> None:
    """Run the gate, print its line and write ``OUT/gate.json``."""
    # Imported here: the gate's measurement pulls in the training package, which plain
    # evaluations do not need.
    from whisper_ja.training.gate_checks import gate_models

    verdict, line = gate_models(config.model, config.adapter, config.gate,
                                baseline=config.baseline, options=config.decoding,
                                device=config.runtime.device, progress=config.progress)
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "gate.json").write_text(json.dumps(
        {"passed": verdict.passed, "line": line, "synthetic": True,
         "drifts": [dataclasses.asdict(d) for d in verdict.drifts]}, indent=2) + "\n",
        encoding="utf-8")
    print(line)


def run(config: EvaluateConfig) -> int:
    """Entry point of ``whisper-ja evaluate``: evaluate, print a summary (and the gate's line).

    Returns:
        0, or 1 when some utterances' audio could not be read (each named on stderr in one
        line, counted, and left out of the scores).
    """
    gate = config.gate if isinstance(config, EvaluateSettings) else GateSettings()
    if gate.active:
        _gate(config)  # type: ignore[arg-type]  # gate.active implies EvaluateSettings
        if config.manifest is None and config.suite == "ja":
            return EXIT_OK
    report = evaluate(config)
    _print_summary(report)
    failed: dict[str, str] = report.data.get("failed") or {}
    for reason in failed.values():
        print(f"whisper-ja evaluate: bad input: {reason}", file=sys.stderr)
    if failed:
        total = report.data["overall"]["utterances"] + len(failed)
        print(f"whisper-ja evaluate: {len(failed)} of {total} utterance(s) left out "
              "(unreadable audio)", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK
