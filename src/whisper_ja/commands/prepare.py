"""``whisper-ja prepare``: its settings and ``run()``."""

from __future__ import annotations

from whisper_ja.data.prepare import PrepareConfig, prepare

__all__ = ["Settings", "run"]

Settings = PrepareConfig
"""The settings of ``whisper-ja prepare`` (flags and YAML keys)."""


def run(config: PrepareConfig) -> int:
    """Entry point of ``whisper-ja prepare``: prepare, then print a summary."""
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
    return 0
