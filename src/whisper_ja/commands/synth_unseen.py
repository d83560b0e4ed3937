"""``whisper-ja synth-unseen``: the unseen-domain check set (gate check a)."""

from __future__ import annotations

from whisper_ja.data.manifest import read_manifest
from whisper_ja.data.unseen import UnseenConfig, make_unseen_set

__all__ = ["Settings", "run"]

Settings = UnseenConfig
"""The settings of ``whisper-ja synth-unseen`` (flags and YAML keys)."""


def run(config: UnseenConfig) -> int:
    """Entry point: synthesize the check set, print a one-line summary."""
    manifest = make_unseen_set(config)
    utts = read_manifest(manifest)
    longest = max(u.duration for u in utts)
    print(f"wrote {manifest}: {len(utts)} SYNTHETIC utterances of the unseen-domain check "
          f"({sum(u.duration for u in utts) / 60:.1f} min, longest {longest:.1f} s); use it as "
          f"train gate.unseen=[{manifest}]")
    return 0
