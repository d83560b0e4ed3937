"""``whisper-ja import-ct2``: its settings and ``run()``."""

from __future__ import annotations

import logging

from whisper_ja.model.ct2 import DTYPES, ImportCt2Config, import_ct2

__all__ = ["Settings", "run"]

log = logging.getLogger(__name__)

Settings = ImportCt2Config
"""The settings of ``whisper-ja import-ct2`` (flags and YAML keys)."""


def run(config: ImportCt2Config) -> int:
    """Run ``whisper-ja import-ct2``: returns 0; an unreadable model raises ``ModelError``."""
    out = import_ct2(config.src, config.out, dtype=DTYPES[config.dtype])
    log.info("imported %s as a transformers Whisper model in %s", config.src, out)
    return 0
