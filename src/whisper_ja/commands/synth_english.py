"""``whisper-ja synth-english``: its settings and ``run()``."""

from __future__ import annotations

from whisper_ja.data.english import (
    RETENTION_CORPUS,
    SynthEnglishConfig,
    synthesize_english_training_set,
)

__all__ = ["Settings", "run"]

Settings = SynthEnglishConfig
"""The settings of ``whisper-ja synth-english`` (flags and YAML keys)."""


def run(config: SynthEnglishConfig) -> int:
    """Entry point of ``whisper-ja synth-english``: English clips to mix into training."""
    manifest = synthesize_english_training_set(config.out, config.size, seed=config.seed,
                                               progress=config.progress)
    print(f"wrote {manifest}: {config.size} synthetic English utterances (espeak-ng, corpus "
          f"{RETENTION_CORPUS}, labelled <|en|> in training); mix them in with "
          f"whisper-ja train ... 'data.train=[JAPANESE.jsonl,{manifest}]' "
          f"'data.mixing=[{RETENTION_CORPUS}=WEIGHT]'")
    return 0
