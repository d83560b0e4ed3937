"""``whisper-ja export``: its settings and ``run()``."""

from __future__ import annotations

import logging

from whisper_ja.export.writer import ExportConfig, export_model

__all__ = ["Settings", "run"]

log = logging.getLogger(__name__)

Settings = ExportConfig
"""The settings of ``whisper-ja export`` (flags and YAML keys)."""


def run(config: ExportConfig) -> int:
    """Run ``whisper-ja export`` (the CLI entry point); returns the exit code."""
    result = export_model(config)
    log.info("exported %s model to %s: %s", result.format, result.out, ", ".join(result.files))
    if result.dynamic_context:
        log.info("the model was fine-tuned with dynamic context; the card says so%s",
                 " (faster-whisper decodes at 30 s)" if result.format == "ct2" else "")
    return 0
