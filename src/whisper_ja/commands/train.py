"""``whisper-ja train``: its settings and ``run()``."""

from __future__ import annotations

import dataclasses
import logging

from whisper_ja.config import load_config
from whisper_ja.training.loop import train
from whisper_ja.training.settings import TrainConfig

__all__ = ["Settings", "resumed_settings", "run"]

log = logging.getLogger(__name__)

Settings = TrainConfig
"""The settings of ``whisper-ja train`` (flags and YAML keys)."""


def resumed_settings(config: TrainConfig) -> TrainConfig:
    """``--resume --out OUT`` alone: the run's saved settings (``OUT/config.yaml``), resumed.

    With training data named, ``config`` is returned as it is (and the resume check compares
    it with the saved settings).
    """
    saved = config.out / "config.yaml"
    if not config.resume or config.data.train or not saved.is_file():
        return config
    log.info("resuming with the settings saved in %s", saved)
    return dataclasses.replace(load_config(TrainConfig, saved), resume=True)


def run(config: TrainConfig) -> int:
    """Entry point of ``whisper-ja train``; returns the exit code."""
    result = train(resumed_settings(config))
    best = result.summary.get("best_val_cer")
    log.info("done: %d steps, best validation CER %s, output in %s", result.summary["steps"],
                "n/a" if best is None else f"{best:.4f}", result.out)
    if "gate_line" in result.summary:  # the run ends with the versatility gate's verdict
        print(result.summary["gate_line"])
    return 0
