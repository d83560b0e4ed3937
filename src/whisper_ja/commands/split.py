"""``whisper-ja split``: its settings and ``run()``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from whisper_ja.data.manifest import read_manifest, write_manifest
from whisper_ja.data.split import SPLIT_NAMES, SplitConfig, split_report, split_with_notes
from whisper_ja.errors import ConfigError

__all__ = ["Settings", "run"]

Settings = SplitConfig
"""The settings of ``whisper-ja split`` (flags and YAML keys)."""


def _print_report(report: dict[str, Any]) -> None:
    for name, per in report["splits"].items():
        cells = ", ".join(f"{c} {v['utterances']} ({v['hours']:.2f} h)"
                          for c, v in sorted(per.items()) if c != "all")
        print(f"{name:<10} {per['all']['utterances']:>7} utterances "
              f"{per['all']['hours']:8.2f} h   {cells}")
    for kind in ("text_overlap", "speaker_overlap"):
        overlap = report.get(kind)
        if overlap:
            print(f"WARNING: {kind} that could not be avoided: {overlap}")
        elif overlap is not None:
            print(f"{kind}: none")
    if report["notes"]:
        print(f"notes: {report['notes']}")
    for warning in report["warnings"]:
        print(f"WARNING: {warning}")
    if report.get("test_speakers_outside_test"):
        print(f"WARNING: held-out speakers outside test: {report['test_speakers_outside_test']}")
    if report.get("test_speakers_missing"):
        print(f"WARNING: test_speakers not in the data: {report['test_speakers_missing']}")


def run(config: SplitConfig) -> int:
    """Entry point of ``whisper-ja split``: read, split, write the three manifests and a report."""
    if not config.manifests:
        raise ConfigError("manifests: give at least one manifest to split")
    if config.out is None:
        raise ConfigError("out: an output folder is required (--out DIR)")
    for manifest in config.manifests:
        if not Path(manifest).is_file():
            raise ConfigError(f"manifests: {manifest} does not exist")
    utts = read_manifest(*config.manifests)
    if not utts:  # three empty manifests would look like a finished split
        raise ConfigError(f"manifests: {', '.join(map(str, config.manifests))} hold(s) no "
                          "utterances; nothing to split")
    splits, notes = split_with_notes(utts, config)
    for name in SPLIT_NAMES:
        write_manifest(config.out / f"{name}.jsonl", splits[name])
    report = split_report(splits, config, notes)
    (config.out / "split_report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    _print_report(report)
    print(f"wrote {config.out}/{{train,validation,test}}.jsonl and split_report.json")
    return 0
