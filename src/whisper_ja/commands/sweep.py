"""``whisper-ja sweep``: its settings and ``run()``."""

from __future__ import annotations

import shlex
import sys

from whisper_ja.training.sweep.driver import SweepConfig, sweep

__all__ = ["Settings", "run"]

Settings = SweepConfig
"""The settings of ``whisper-ja sweep`` (flags and YAML keys)."""


def run(config: SweepConfig) -> int:
    """Entry point of ``whisper-ja sweep``: run the sweep, print the table, return 0."""
    result = sweep(config, command=shlex.join(["whisper-ja", *sys.argv[1:]]))
    print(result.files["markdown"].read_text(encoding="utf-8"))
    return 0
