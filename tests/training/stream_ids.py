"""Run by ``torchrun`` in ``test_stream_ranks.py``: one epoch of streamed batches per rank.

Each rank reads through :class:`~whisper_ja.training.stream_steps.StreamSteps`, the object the
training loop steps through, with two DataLoader workers, and writes the clip ids of every
batch it consumed in epoch 0 and how many steps it took.

Usage: torchrun --nproc_per_node 2 stream_ids.py SHARDS MODEL_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import WhisperProcessor

from whisper_ja.audio.features import ContextPolicy, context_frames
from whisper_ja.data.collate import collate
from whisper_ja.data.stream_sources import plan_sources
from whisper_ja.data.timestamps import LabelMix
from whisper_ja.text.labels import LabelSettings
from whisper_ja.training.stream import Featurizer, Labeler, ReaderPlan
from whisper_ja.training.stream_steps import StreamPosition, StreamSteps


def main(shards: str, model_dir: str, out: str) -> None:
    accelerator = Accelerator(cpu=True)
    processor = WhisperProcessor.from_pretrained(model_dir)
    workers = 2
    plan = ReaderPlan(seed=0, epoch=0, rank=accelerator.process_index,
                      world=accelerator.num_processes, workers=workers, slot_order=(), skip={},
                      done=frozenset(), weights={}, shuffle_buffer=4, batch_size=2,
                      max_duration=0.0, boundaries=(2.0, 4.0))
    labeler = Labeler(processor.tokenizer, LabelSettings(), LabelMix(0.0, 0.0, 0), 448, 0.0)
    steps = StreamSteps(plan_sources([Path(shards)], plan.slots, 1 << 22), plan, labeler,
                        Featurizer(processor.feature_extractor, None, 0),
                        partial(collate, frames=partial(context_frames, policy=ContextPolicy())),
                        accelerator, grad_accum=1, n_mels=processor.feature_extractor.feature_size)
    seen: list[str] = []
    take = StreamPosition.take

    def recording_take(self: StreamPosition, local: int, item: object) -> None:
        if self.epoch == 0:
            seen.extend(item.ids)  # type: ignore[attr-defined]
        take(self, local, item)  # type: ignore[arg-type]

    StreamPosition.take = recording_take  # type: ignore[method-assign]
    taken = 0
    for _ in steps.steps(0, 10**6):
        if steps.position.epoch > 0:
            break
        taken += 1
    Path(out, f"rank{accelerator.process_index}.json").write_text(
        json.dumps({"ids": seen, "steps": taken}), encoding="utf-8")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
