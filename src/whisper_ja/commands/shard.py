"""``whisper-ja shard``: turn manifests into WebDataset tar shards that ``train`` streams.

    whisper-ja shard corpus/train.jsonl --out shards/train --clips-per-shard 2000
    whisper-ja train data.train=[shards/train] optim.max_steps=20000 ...

    whisper-ja shard --hub reazon-research/reazonspeech --hub-config medium --out shards/rs

The manifest is read line by line and each shard is written as it fills, so memory stays flat
whatever the corpus size. A hub corpus (or a ``save_to_disk`` folder) is streamed through
``datasets`` and its audio bytes go straight into the shards: no ``audio/`` copy first, as
``prepare`` makes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from whisper_ja.config import ConfigError, field
from whisper_ja.data.corpora.hub import hub_clips
from whisper_ja.data.manifest import iter_manifest
from whisper_ja.data.shards import ShardReport, write_clip_shards, write_shards
from whisper_ja.errors import EXIT_ITEMS_FAILED

__all__ = ["Settings", "run"]


@dataclass(frozen=True)
class Settings:
    """Settings of ``whisper-ja shard``."""

    manifests: tuple[Path, ...] = field((), positional=True, help="input manifest(s) (JSONL)")
    out: Path | None = field(None, help="output folder for the shards and their index.json")
    clips_per_shard: int = field(1000, help="clips per shard (about 100-200 MB of FLAC)")
    hub: str = field("", help="instead of manifests: a hub corpus id, streamed with datasets "
                              "(or a save_to_disk folder)")
    hub_config: str = field("", help="the hub corpus's configuration (ReazonSpeech: medium...)")
    split: str = field("train", help="the hub corpus's split")
    text_column: str = field("transcription", help="the hub corpus's transcript column")
    corpus: str = field("reazonspeech", help="corpus name of the hub corpus's clips")

    def __post_init__(self) -> None:
        if self.clips_per_shard < 1:
            raise ConfigError(f"clips_per_shard: must be >= 1, got {self.clips_per_shard}")


def run(config: Settings) -> int:
    """Entry point of ``whisper-ja shard``; exit 1 when clips were skipped (all named)."""
    if bool(config.manifests) == bool(config.hub):
        raise ConfigError("manifests: give manifests to shard, or --hub, not both")
    if config.out is None:
        raise ConfigError("out: an output folder is required (--out DIR)")
    for manifest in config.manifests:
        if not Path(manifest).is_file():
            raise ConfigError(f"manifests: {manifest} does not exist")
    if config.hub:
        report = ShardReport()
        clips = hub_clips(config.hub, config.hub_config or None, config.split,
                          text_column=config.text_column, corpus=config.corpus,
                          skipped=report.skipped, named=report.named)
        report = write_clip_shards(clips, config.out, config.clips_per_shard, report)
    else:
        utterances = (u for manifest in config.manifests for u in iter_manifest(manifest))
        report = write_shards(utterances, config.out, config.clips_per_shard)
    print(f"{report.clips} clips ({report.seconds / 3600:.2f} h) in {len(report.shards)} "
          f"shard(s) in {config.out}")
    if report.skipped:
        for line in report.named:
            print(f"whisper-ja shard: bad input: {line}", file=sys.stderr)
        print(f"whisper-ja shard: skipped {dict(report.skipped)}", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return 0
