"""``whisper-ja transcribe``: its settings and ``run()``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TextIO

from whisper_ja.errors import EXIT_ITEMS_FAILED, EXIT_OK
from whisper_ja.inference.transcribe import (
    OUTPUT_EXTENSIONS,
    TranscribeConfig,
    Transcript,
    format_transcript,
    transcribe_files,
)

__all__ = ["Settings", "run"]

log = logging.getLogger(__name__)

Settings = TranscribeConfig
"""The settings of ``whisper-ja transcribe`` (flags and YAML keys)."""


def _write(transcripts: list[Transcript], config: TranscribeConfig, out: TextIO) -> None:
    if config.output_dir is not None:
        folder = Path(config.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for t in transcripts:
            target = folder / f"{t.path.stem}.{OUTPUT_EXTENSIONS[config.output_format]}"
            target.write_text(format_transcript(t, config.output_format), encoding="utf-8")
        return
    several = len(config.audio) > 1
    for t in transcripts:
        body = format_transcript(t, config.output_format)
        if several and config.output_format == "text":
            body = f"{t.path}\t{body}"
        elif several and config.output_format == "srt":
            body = f"==> {t.path} <==\n{body}\n"
        out.write(body)


def run(config: TranscribeConfig) -> int:
    """Run ``whisper-ja transcribe``.

    Returns:
        0 when every file was transcribed, 1 when any failed (each failure was reported on
        stderr in one line naming the file). An unusable model raises ``ModelError``.
    """
    transcripts, errors = transcribe_files(config, progress=sys.stderr.isatty())
    _write(transcripts, config, sys.stdout)
    for error in errors:
        print(f"whisper-ja transcribe: error: {error}", file=sys.stderr)
    for t in transcripts:
        if t.looped:
            log.warning("whisper-ja transcribe: %s: output repeats itself (possible "
                        "hallucination)", t.path)
    if errors:
        print(f"whisper-ja transcribe: {len(errors)} of {len(config.audio)} file(s) failed",
              file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK
