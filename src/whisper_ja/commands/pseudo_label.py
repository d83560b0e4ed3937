"""``whisper-ja pseudo-label``: a teacher model transcribes a corpus for distillation or training.

    whisper-ja pseudo-label corpus/train.jsonl --model kotoba-tech/kotoba-whisper-v2.0 --out pl
    accelerate launch --num_processes 8 -m whisper_ja.cli pseudo-label ...   # 8 GPUs
    whisper-ja train data.train=[pl/labels.jsonl] data.max_pseudo_cer=0.1 ...

Each process decodes its own pieces of the corpus; rerun the same command after a crash and it
goes on where it stopped, decoding nothing twice (see
:mod:`whisper_ja.training.pseudo_label`). Exit 1 when clips were skipped (each named).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from accelerate import PartialState

from whisper_ja.config import ConfigError, field
from whisper_ja.data.manifest import Utterance
from whisper_ja.errors import EXIT_ITEMS_FAILED
from whisper_ja.inference.engine import Engine, load_engine
from whisper_ja.inference.options import DecodingOptions, RuntimeSettings
from whisper_ja.training.pseudo_label import Transcriber, join_pieces, label_pieces

__all__ = ["Settings", "run"]


@dataclass(frozen=True)
class Settings:
    """Settings of ``whisper-ja pseudo-label``."""

    manifests: tuple[Path, ...] = field((), positional=True, help="corpus manifest(s) (JSONL)")
    model: str = field("", help="teacher model: hub id, local folder or CTranslate2 folder")
    adapter: str | None = field(None, help="the teacher's LoRA adapter folder, if any")
    out: Path | None = field(None, help="output folder (labels.jsonl, pieces/, report.json)")
    progress: bool = field(False, help="show a progress bar per batch")
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings, inline=True,
                                     help="backend, device and precision (as transcribe)")
    decoding: DecodingOptions = field(default_factory=lambda: DecodingOptions(batch_size=16),
                                      inline=True, help="how to decode (as transcribe)")


def transcriber(engine: Engine, progress: bool) -> Transcriber:
    """The teacher's decoding through the inference engine: the one call to re-point."""
    def transcribe(utts: Sequence[Utterance]) -> tuple[list[str | None], dict[str, str]]:
        decoded = engine.decode_utterances(utts, progress=progress)
        return [r.text if r is not None else None for r in decoded.results], decoded.failed

    return transcribe


def run(config: Settings) -> int:
    """Entry point of ``whisper-ja pseudo-label``."""
    if not config.manifests or not config.model or config.out is None:
        raise ConfigError("manifests, --model and --out: name the corpus, the teacher and "
                          "an output folder")
    for manifest in config.manifests:
        if not Path(manifest).is_file():
            raise ConfigError(f"manifests: {manifest} does not exist")
    state = PartialState()
    engine = load_engine(config.model, config.adapter, config.runtime, config.decoding)
    report = label_pieces(config.manifests, config.out,
                          transcriber(engine, config.progress), config.model,
                          rank=state.process_index, world=state.num_processes,
                          batch_size=config.decoding.batch_size)
    state.wait_for_everyone()
    if not state.is_main_process:
        return EXIT_ITEMS_FAILED if report.skipped else 0
    rows, over = join_pieces(config.out)
    summary = {"labelled_rows": rows, "labelled_now": report.labelled,
               "pieces_resumed": report.resumed_pieces, "skipped": dict(report.skipped),
               "skipped_named": report.named, "teacher": config.model, **over}
    (config.out / "report.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False),
                                            encoding="utf-8")
    print(f"{rows} labelled rows in {config.out / 'labels.jsonl'} ({over})")
    for line in report.named:
        print(f"whisper-ja pseudo-label: bad input: {line}", file=sys.stderr)
    return EXIT_ITEMS_FAILED if report.skipped else 0
