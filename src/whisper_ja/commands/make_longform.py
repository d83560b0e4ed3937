"""``whisper-ja make-longform``: its settings and ``run()``.

Joins the clips of a manifest into recordings with exact sentence boundaries (``segments``),
pauses and noise-only stretches: 30 s multi-sentence clips for timestamp training, or
minutes-long files for ``evaluate --suite longform``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from whisper_ja.config import field
from whisper_ja.data.longform import LongformSettings, make_longform
from whisper_ja.data.manifest import read_manifest, write_manifest
from whisper_ja.errors import EXIT_OK, ConfigError

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
    """Write the recordings and ``OUT/manifest.jsonl``; print a one-line summary."""
    for manifest in config.manifests:
        if not Path(manifest).is_file():
            raise ConfigError(f"manifests: {manifest} does not exist")
    utts = read_manifest(*config.manifests)
    if config.limit:
        utts = utts[: config.limit]
    if not utts:
        raise ConfigError("manifests: no clips to join")
    records = make_longform(utts, config.out / "audio", config.recording)
    write_manifest(config.out / "manifest.jsonl", records)
    hours = sum(r.duration for r in records) / 3600
    print(f"wrote {len(records)} recordings ({hours:.2f} h, {len(utts)} sentences) to "
          f"{config.out}/manifest.jsonl")
    return EXIT_OK
