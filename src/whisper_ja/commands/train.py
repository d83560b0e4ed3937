"""``whisper-ja train``: its settings and ``run()``."""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Any

from whisper_ja.config import load_config
from whisper_ja.errors import EXIT_ITEMS_FAILED
from whisper_ja.training.loop import train
from whisper_ja.training.settings import TrainConfig

__all__ = ["BAD_ITEMS", "Settings", "resumed_settings", "run"]

log = logging.getLogger(__name__)

Settings = TrainConfig
"""The settings of ``whisper-ja train`` (flags and YAML keys)."""


BAD_ITEMS = ("unreadable audio", "malformed row", "unreadable shard", "shard ends early",
             "incomplete clip in shard")
"""Skip reasons that are bad input (exit 1), unlike the data's own filters (a clip over 30 s,
an empty transcript, a label too long, a pseudo-label over ``data.max_pseudo_cer``)."""


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
    return _report_bad_items(result.summary)


def _report_bad_items(summary: dict[str, Any]) -> int:
    """Name the bad clips the run skipped on stderr, one line each; 1 if there were any."""
    bad = {reason: count for reason, count in summary.get("skipped", {}).items()
           if reason in BAD_ITEMS}
    if not bad:
        return 0
    for line in summary.get("skipped_named", []):
        print(f"whisper-ja train: bad input: {line}", file=sys.stderr)
    print(f"whisper-ja train: {sum(bad.values())} bad item(s) skipped and counted "
          f"({', '.join(f'{r}: {n}' for r, n in bad.items())}); the run went on without them "
          "(summary.json names them)", file=sys.stderr)
    return EXIT_ITEMS_FAILED
