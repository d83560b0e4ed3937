"""``whisper-ja align-heads``: choose the alignment heads of a (fine-tuned) model.

Fine-tuning moves which cross-attention heads follow the audio, and word timestamps from the
old heads drift. This command scores every decoder head on clips with known sentence starts
(records with ``segments`` of at most 30 s, e.g. ``make-longform --recording.max_seconds 30``),
keeps the best ``count`` and writes them into the model folder's ``generation_config.json`` and,
with ``--ct2``, into a CTranslate2 export's ``config.json`` (faster-whisper reads them there).
It prints the sentence-start error of DTW over the old heads and over the new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from whisper_ja.audio.io import load_audio
from whisper_ja.config import field
from whisper_ja.data.manifest import read_manifest
from whisper_ja.errors import EXIT_OK, ConfigError
from whisper_ja.inference.alignment import (
    alignment_sample,
    anchor_error,
    default_heads,
    select_alignment_heads,
    write_alignment_heads,
)
from whisper_ja.model import load_model

__all__ = ["Settings", "run"]


@dataclass(frozen=True)
class Settings:
    """Settings of ``whisper-ja align-heads``."""

    manifest: Path = field(help="clips of at most 30 s with segments (sentence starts)",
                           positional=True)
    model: str = field(help="the model: a transformers folder (its generation config is "
                            "updated) or a hub id")
    adapter: str | None = field(None, help="PEFT adapter applied (merged) before scoring")
    ct2: Path | None = field(None, help="also write the heads into this CTranslate2 export")
    count: int = field(8, help="heads to keep")
    limit: int = field(32, help="clips scored (0 = all)")
    write: bool = field(True, help="write the heads (false: only report the errors)")

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"count: must be at least 1, got {self.count}")


def run(config: Settings) -> int:
    """Score heads, print the errors before and after, write the heads."""
    utts = [u for u in read_manifest(config.manifest) if u.segments and u.duration <= 30.0]
    utts = utts[: config.limit] if config.limit else utts
    if not utts:
        raise ConfigError(f"manifest: no record of {config.manifest} has segments and fits 30 s")
    loaded = load_model(config.model, adapter=config.adapter)
    model = loaded.model.merge_and_unload() if config.adapter else loaded.model
    samples = [alignment_sample(model, loaded.processor, load_audio(u.audio),
                                [(s.start, s.text) for s in u.segments]) for u in utts]
    before = anchor_error(samples, default_heads(model))
    heads = select_alignment_heads(samples, config.count)
    after = anchor_error(samples, heads)
    print(f"sentence-start error over {len(utts)} clips: {1000 * before:.0f} ms with the "
          f"model's heads, {1000 * after:.0f} ms with the chosen {heads}")
    if config.write:
        folder = Path(config.model)
        targets = ([folder] if (folder / "config.json").is_file() and not config.adapter
                   else []) + ([config.ct2] if config.ct2 else [])
        for target in targets:
            print(f"wrote {write_alignment_heads(target, heads)}")
        if not targets:
            print("nothing written: give a transformers folder as --model or --ct2 DIR")
    return EXIT_OK
