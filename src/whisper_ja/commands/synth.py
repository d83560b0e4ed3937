"""``whisper-ja synth``: its settings and ``run()``."""

from __future__ import annotations

import json

from whisper_ja.data.synth import SynthConfig, synthesize_from_settings

__all__ = ["Settings", "run"]

Settings = SynthConfig
"""The settings of ``whisper-ja synth`` (flags and YAML keys)."""


def run(config: SynthConfig) -> int:
    """Entry point of ``whisper-ja synth``: synthesize, then print a summary."""
    manifest = synthesize_from_settings(config)
    report = json.loads((config.out / "synth_report.json").read_text(encoding="utf-8"))
    print(f"wrote {manifest}: {report['utterances']} synthetic utterances, "
          f"{report['hours']:.3f} h; {report['counts']}")
    return 0
