"""In-memory training data: every clip's label in memory, batches planned per epoch.

The path for small data (``data.streaming: never``, or ``auto`` with small manifests): the epoch's
global batch list is a pure function of seed and epoch, the same on every process; process ``r``
takes every ``processes``-th batch from ``r``. The step counter alone fixes the data position, so
nothing else is saved for a resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from whisper_ja.config import ConfigError
from whisper_ja.data.collate import Example, SpeechDataset, epoch_batches, epoch_composition
from whisper_ja.training.settings import TrainConfig, parse_mixing

__all__ = ["MemorySteps"]


class MemorySteps:
    """The optimizer steps' batches of one process, from clips held in memory.

    Args:
        config: The run's settings.
        train: The training clips.
        frames: Frames of each clip (length grouping).
        corpora: Corpus of each clip (mixing).
        collate: Pads examples into a batch.
        processes: Processes of the run.
        rank: This process's index.

    Raises:
        ConfigError: naming ``optim.batch_size`` if the data cannot fill one step.
    """

    def __init__(self, config: TrainConfig, train: SpeechDataset, frames: Sequence[int],
                 corpora: Sequence[str],
                 collate: Callable[[list[Example]], dict[str, torch.Tensor]],
                 processes: int, rank: int) -> None:
        self.config = config
        self.train = train
        self.frames = list(frames)
        self.corpora = list(corpora)
        self.collate = collate
        self.processes = processes
        self.rank = rank
        self.skipped: dict[str, int] = {}
        self.named: list[str] = []
        self.label_changes: dict[str, int] = {}
        batches = len(self._epoch(0))
        self.steps_per_epoch = batches // processes // config.optim.grad_accum
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"optim.batch_size: {len(train)} training clips make {batches} batches, too "
                f"few for grad_accum={config.optim.grad_accum} on {processes} process(es)")

    def _epoch(self, epoch: int) -> list[list[int]]:
        config = self.config
        return epoch_batches(self.frames, self.corpora, epoch,
                             batch_size=config.optim.batch_size, seed=config.seed,
                             weights=parse_mixing(config.data.mixing),
                             length_grouping=config.efficiency.length_grouping)

    def steps(self, start_step: int, total_steps: int) -> Iterator[list[dict[str, torch.Tensor]]]:
        """Yield each remaining optimizer step's batches for this process, epoch after epoch.

        Batches that do not fill a whole step on every process are left out of that epoch (a
        different random few each epoch).
        """
        accum = self.config.optim.grad_accum
        step = start_step
        while step < total_steps:
            epoch, offset = divmod(step, self.steps_per_epoch)
            mine = self._epoch(epoch)[self.rank::self.processes][: self.steps_per_epoch * accum]
            loader = torch.utils.data.DataLoader(self.train, batch_sampler=mine[offset * accum:],
                                                 collate_fn=self.collate)
            pending: list[dict[str, torch.Tensor]] = []
            for batch in loader:
                pending.append(batch)
                if len(pending) == accum:
                    yield pending
                    pending = []
                    step += 1
                    if step >= total_steps:
                        return

    def gather_position(self) -> None:
        """Nothing to gather: the step counter fixes the data position."""

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save (for ``register_for_checkpointing``, as the streamed data has)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore."""

    def epoch(self, step: int) -> float:
        """The epoch (fractional) a step falls in."""
        return step / self.steps_per_epoch

    def summary(self) -> dict[str, Any]:
        """The training data's part of the run summary."""
        return {"train_clips": len(self.train),
                "epoch_clips_by_corpus": epoch_composition(
                    self.corpora, parse_mixing(self.config.data.mixing)),
                "skipped": self.skipped, "skipped_named": self.named,
                "label_changes": self.label_changes}
