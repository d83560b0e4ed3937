"""``whisper-ja make-longform``: its settings and ``run()``.

Joins the clips of a manifest into recordings with exact sentence boundaries (``segments``),
pauses and noise-only stretches: 30 s multi-sentence clips for timestamp training, or
minutes-long files for ``evaluate --suite longform``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from whisper_ja.config import field
from whisper_ja.data.longform import LongformSettings, make_longform
from whisper_ja.data.manifest import read_manifest, write_manifest
from whisper_ja.errors import EXIT_ITEMS_FAILED, EXIT_OK, AudioError, ConfigError

__all__ = ["Settings", "run"]


@dataclass(frozen=True)
class Settings:
    """Settings of ``whisper-ja make-longform``."""

    manifests: tuple[Path, ...] = field(help="source manifest(s), clips used in order",
                                        positional=True)
    out: Path = field(Path("longform"), help="output folder (WAV files and manifest.jsonl)")
    limit: int = field(0, help="use at most this many source clips (0 = all)")
    recording: LongformSettings = field(default_factory=LongformSettings,
                                        help="lengths, pauses and noise")


def run(config: Settings) -> int:
    """Write the recordings and ``OUT/manifest.jsonl``; print a one-line summary.

    Returns:
        0, or 1 when some clips' audio was missing, unreadable or truncated: each is named on
        stderr in one line, counted, and left out of the recordings; the rest are written.
    """
    for manifest in config.manifests:
        if not Path(manifest).is_file():
            raise ConfigError(f"manifests: {manifest} does not exist")
    utts = read_manifest(*config.manifests)
    if config.limit:
        utts = utts[: config.limit]
    if not utts:
        raise ConfigError("manifests: no clips to join")
    skipped: list[AudioError] = []
    records = make_longform(utts, config.out / "audio", config.recording, skipped=skipped)
    write_manifest(config.out / "manifest.jsonl", records)
    hours = sum(r.duration for r in records) / 3600
    joined = len(utts) - len(skipped)
    print(f"wrote {len(records)} recordings ({hours:.2f} h, {joined} sentences) to "
          f"{config.out}/manifest.jsonl")
    for err in skipped:
        print(f"whisper-ja make-longform: {err.kind}: {err}", file=sys.stderr)
    if skipped:
        print(f"whisper-ja make-longform: {len(skipped)} of {len(utts)} clip(s) left out "
              "(missing, unreadable or truncated audio)", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK
