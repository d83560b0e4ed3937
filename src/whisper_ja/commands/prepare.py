"""``whisper-ja prepare``: its settings and ``run()``."""

from __future__ import annotations

import sys

from whisper_ja.data.prepare import PrepareConfig, prepare
from whisper_ja.errors import EXIT_ITEMS_FAILED, EXIT_OK

__all__ = ["Settings", "run"]

Settings = PrepareConfig
"""The settings of ``whisper-ja prepare`` (flags and YAML keys)."""


def run(config: PrepareConfig) -> int:
    """Entry point of ``whisper-ja prepare``: prepare, then print a summary.

    Returns:
        0, or 1 when candidates were skipped (each kind counted, its first examples named).
    """
    manifest, report = prepare(config)
    print(f"wrote {manifest}: {report['kept']} utterances, {report['hours']:.2f} h, "
          f"{report['speakers']} speakers, official splits {report['official_splits']}")
    if report["skipped_total"]:
        print(f"skipped {report['skipped_total']}: {report['skipped']}")
        for kind, examples in report["examples"].items():
            print(f"  {kind}, e.g. {examples[0]}")
    else:
        print("skipped 0")
    if report["notes"]:
        print(f"notes: {report['notes']}")
    if report["skipped_total"]:
        print(f"whisper-ja prepare: {report['skipped_total']} item(s) skipped "
              f"({manifest.parent / 'prepare_report.json'} names them)", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK
