"""Streamed training data, the training-process side: steps of batches, and where they stand.

Each process runs one DataLoader over its readers (:class:`~whisper_ja.training.stream.ClipStream`
in its workers). PyTorch hands the workers' batches out round robin, in worker order, dropping a
worker once it is exhausted; each reader ends with an end marker, so the position is fully known
here: the epoch, the batches consumed from each reader, which readers are done, and which reader
gave the last batch. That position (every process's) travels in each checkpoint, and a resume
restarts the readers with their consumed batches replayed without audio and the worker order
rotated so the round robin continues where it stopped: the same batches in the same order, so
the same weights as a run that was never stopped.

Processes stay in step: each step they agree (one small all-reduce) whether any has data left.
A process whose readers are done while others still read trains on an empty batch (no target
token: no loss, no gradient) so DDP's collectives still meet, and no clip is dropped to even the
shards out; the epoch ends when every process is done. That avoids the pitfall of uneven shards
(datasets#5961) without reading anything twice.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object

from whisper_ja.config import ConfigError
from whisper_ja.data.collate import IGNORE_INDEX, Example
from whisper_ja.data.skips import NAMED_KEPT
from whisper_ja.data.stream_sources import Source
from whisper_ja.training.stream import ClipStream, Labeled, Labeler, ReaderPlan, StreamBatch

__all__ = ["StreamPosition", "StreamSteps"]



@dataclass
class StreamPosition:
    """Where this process's readers stand, and what they have handed out so far."""

    epoch: int = 0
    consumed: dict[int, int] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    last: int = -1
    clips: int = 0
    corpora: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    named: list[str] = field(default_factory=list)
    label_changes: Counter[str] = field(default_factory=Counter)

    def take(self, local: int, item: StreamBatch) -> None:
        """Count a consumed reader batch (or end marker)."""
        self.consumed[local] = item.index + 1
        self.last = local
        if item.end:
            self.done.add(local)
        self.clips += len(item.ids)
        self.corpora.update(item.corpora)
        if self.epoch == 0:  # a bad clip is met every epoch: counted (and named) once
            self.skipped.update(item.skipped)
            self.label_changes.update(item.label_changes)
            self.named += item.named[: NAMED_KEPT - len(self.named)]


class StreamSteps:
    """The optimizer steps' batches of one process, read from streamed data.

    Args:
        sources: The corpus's pieces, in their fixed order.
        plan: Reader settings; epoch, slot order and skips are filled in here.
        labeler: Builds labels in the readers.
        features: Computes a clip's features in the readers.
        collate: Pads examples into a batch.
        accelerator: The run's accelerator (process index, count, all-reduce).
        grad_accum: Batches per optimizer step.
        n_mels: Mel bins (for the empty batch of a process that is done).
    """

    def __init__(self, sources: Sequence[Source], plan: ReaderPlan, labeler: Labeler,
                 features: Callable[[Labeled], np.ndarray],
                 collate: Callable[[list[Example]], dict[str, torch.Tensor]],
                 accelerator: Any, grad_accum: int, n_mels: int) -> None:
        self.sources = list(sources)
        self.plan = plan
        self.labeler = labeler
        self.features = features
        self.collate = collate
        self.accelerator = accelerator
        self.grad_accum = grad_accum
        self.n_mels = n_mels
        self.position = StreamPosition()
        self.steps_per_epoch = 0  # an estimate, set by the builder (logs and the schedule)
        self._saved: list[Any] = []

    # --- steps -----------------------------------------------------------------------------

    def steps(self, start_step: int, total_steps: int) -> Iterator[list[dict[str, torch.Tensor]]]:
        """Yield each remaining step's batches (``grad_accum`` of them), epoch after epoch."""
        step = start_step
        empty_epochs = 0
        while step < total_steps:
            stream = self._consume()
            had_data = False
            while step < total_steps:
                pending = list(itertools.islice(stream, self.grad_accum))
                if not self._any_process(bool(pending)):
                    break
                had_data = True
                pending += [self._empty_batch()] * (self.grad_accum - len(pending))
                yield pending
                step += 1
            else:
                return
            empty_epochs = 0 if had_data else empty_epochs + 1
            if empty_epochs == 2:  # one may be the tail of an epoch a resume started in
                raise ConfigError("data.train: no usable training clip in an epoch of the "
                                  f"streamed data (skipped: {dict(self.position.skipped)})")
            self.position = replace(self.position, epoch=self.position.epoch + 1, consumed={},
                                    done=set(), last=-1)

    def _consume(self) -> Iterator[dict[str, torch.Tensor]]:
        """This epoch's batches from the DataLoader, the position updated as each is taken."""
        workers = max(self.plan.workers, 1)
        dataset = ClipStream(self.sources, self._reader_plan(), self.labeler, self.features,
                             self.collate)
        # Its own generator: a DataLoader's iterator draws a seed, which must not move the
        # run's global RNG (dropout), or a resumed run would differ from an unbroken one.
        loader = torch.utils.data.DataLoader(dataset, batch_size=None,
                                             num_workers=self.plan.workers,
                                             generator=torch.Generator(),
                                             prefetch_factor=2 if self.plan.workers else None)
        for item in loader:
            self.position.take(item.slot - self.accelerator.process_index * workers, item)
            if item.batch is not None:
                yield item.batch

    def _reader_plan(self) -> ReaderPlan:
        workers = max(self.plan.workers, 1)
        start = (self.position.last + 1) % workers
        cyclic = [(start + k) % workers for k in range(workers)]
        done = self.position.done
        order = [s for s in cyclic if s not in done] + sorted(done)
        return replace(self.plan, epoch=self.position.epoch, slot_order=tuple(order),
                       skip=dict(self.position.consumed), done=frozenset(done))

    def _any_process(self, has_data: bool) -> bool:
        flag = torch.tensor(int(has_data), device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item())

    def _empty_batch(self) -> dict[str, torch.Tensor]:
        """A batch with no target token: it adds no loss and no gradient, only keeps DDP in step."""
        eot = 0
        batch = self.collate([Example("", "", np.zeros((self.n_mels, 100), np.float32),
                                      (eot, eot))])
        batch["labels"] = torch.full_like(batch["labels"], IGNORE_INDEX)
        return batch

    # --- position in checkpoints -------------------------------------------------------------

    def gather_position(self) -> None:
        """Collect every process's position for the next checkpoint (every process calls it)."""
        self._saved = gather_object([self.position])

    def state_dict(self) -> dict[str, Any]:
        """Every process's position (for ``accelerator.register_for_checkpointing``)."""
        return {"world": self.plan.world, "workers": self.plan.workers, "positions": self._saved}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """This process's position from a checkpoint of a run with as many readers."""
        if (state["world"], state["workers"]) != (self.plan.world, self.plan.workers):
            raise ConfigError(
                f"resume: the run was streamed by {state['world']} process(es) with "
                f"{state['workers']} worker(s) each, now {self.plan.world} with "
                f"{self.plan.workers}; the data position cannot carry over. Resume with the same "
                "process and efficiency.workers counts, or start a new run in another folder")
        self.position = state["positions"][self.accelerator.process_index]

    # --- report ----------------------------------------------------------------------------

    def epoch(self, step: int) -> float:
        """The epoch the stream is in (streamed data has no known epoch length)."""
        return float(self.position.epoch)

    def summary(self) -> dict[str, Any]:
        """What all processes read, skipped and named (every process calls it)."""
        positions: list[StreamPosition] = gather_object([self.position])
        total = StreamPosition()
        for p in positions:
            total.clips += p.clips
            total.corpora.update(p.corpora)
            total.skipped.update(p.skipped)
            total.label_changes.update(p.label_changes)
            total.named += p.named[: NAMED_KEPT - len(total.named)]
        return {"streamed": True, "train_clips_read": total.clips,
                "epochs_started": max(p.epoch for p in positions) + 1,
                "clips_read_by_corpus": dict(sorted(total.corpora.items())),
                "skipped": dict(total.skipped), "skipped_named": total.named,
                "label_changes": dict(total.label_changes)}
