"""``whisper-ja train``: its settings and ``run()``."""

from __future__ import annotations

import logging

from whisper_ja.training.loop import train
from whisper_ja.training.settings import TrainConfig

__all__ = ["Settings", "run"]

log = logging.getLogger(__name__)

Settings = TrainConfig
"""The settings of ``whisper-ja train`` (flags and YAML keys)."""


def run(config: TrainConfig) -> int:
    """Entry point of ``whisper-ja train``; returns the exit code."""
    result = train(config)
    best = result.summary.get("best_val_cer")
    log.info("done: %d steps, best validation CER %s, output in %s", result.summary["steps"],
                "n/a" if best is None else f"{best:.4f}", result.out)
    if "gate_line" in result.summary:  # the run ends with the versatility gate's verdict
        print(result.summary["gate_line"])
    return 0
