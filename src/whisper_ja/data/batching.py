"""Length-grouped batching: clips of similar length share a batch, so little is padding.

With dynamic audio context the encoder runs on the longest clip of each batch, so a batch of
one 2-s clip and one 9-s clip costs as much as two 9-s clips. :class:`LengthGroupedSampler`
shuffles the data, cuts it into windows of many batches, sorts each window by length and slices
it into batches, then shuffles the batch order: randomness between epochs stays (like the
``group_by_length`` sampler of Hugging Face's Trainer, whose recipe this follows), padding
drops to a few percent. Every index appears exactly once per epoch, and the sampler can resume
mid-epoch from :meth:`~LengthGroupedSampler.state_dict`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["LengthGroupedSampler"]

WINDOW_BATCHES = 50
"""Batches per sorted window (Hugging Face's ``mega_batch_mult``): large enough to group lengths
well, small enough that batch composition still changes from epoch to epoch."""


class LengthGroupedSampler:
    """Batch sampler yielding lists of indices grouped by length.

    Pass it as ``batch_sampler=`` to a ``torch.utils.data.DataLoader``, or iterate it directly.

    Args:
        lengths: Length of each item (frames, samples or seconds: only the order matters).
        batch_size: Items per batch; the last batch of an epoch may be smaller.
        seed: Seed of the shuffling; the same seed and epoch give the same batches.
        shuffle: If False, batches are consecutive runs of the items sorted by length (longest
            first), the same every epoch (for evaluation).

    Raises:
        ValueError: if ``batch_size`` < 1, ``lengths`` is empty or holds a negative value.
    """

    def __init__(self, lengths: Sequence[float] | np.ndarray, batch_size: int, seed: int = 0,
                 shuffle: bool = True) -> None:
        self.lengths = np.asarray(lengths, dtype=np.float64)
        if self.lengths.ndim != 1 or self.lengths.size == 0:
            raise ValueError("lengths must be a non-empty sequence of numbers")
        if (self.lengths < 0).any() or not np.isfinite(self.lengths).all():
            bad = int(np.flatnonzero(~(self.lengths >= 0) | ~np.isfinite(self.lengths))[0])
            raise ValueError(f"lengths[{bad}] = {self.lengths[bad]} is not a length")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.epoch = 0
        self.position = 0  # batches of the current epoch already handed out

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.lengths.size // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches to yield (a new epoch starts at its first batch).

        Setting the epoch already in progress keeps the position, so a loop that calls
        ``set_epoch`` after :meth:`load_state_dict` resumes where it stopped.
        """
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self.position = 0

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """All batches of ``epoch`` (default: the current one), in order."""
        epoch = self.epoch if epoch is None else epoch
        # Sort stably by descending length, ties by index, so the order is deterministic.
        if not self.shuffle:
            order = np.lexsort((np.arange(self.lengths.size), -self.lengths))
            return [order[i:i + self.batch_size].tolist()
                    for i in range(0, order.size, self.batch_size)]
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.lengths.size)
        window = self.batch_size * WINDOW_BATCHES
        batches: list[list[int]] = []
        for start in range(0, order.size, window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + self.batch_size].tolist()
                           for i in range(0, chunk.size, self.batch_size))
        # Shuffle the batch order; the short last batch of a window stays a batch of its own.
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        """Yield the remaining batches of the current epoch, advancing :attr:`position`.

        Note that a ``DataLoader`` with workers prefetches batches, so :attr:`position` may run
        a few batches ahead of the training step; store the step count yourself and restore
        with ``load_state_dict({... "position": steps_done_in_epoch})`` if that matters.
        """
        batches = self.batches()
        while self.position < len(batches):
            batch = batches[self.position]
            self.position += 1
            yield batch
        self.position = 0  # epoch complete: a new pass over the same epoch starts afresh

    def state_dict(self) -> dict[str, Any]:
        """Where the sampler stands: epoch, batches already handed out, and what defines them."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "batch_size": self.batch_size, "num_items": int(self.lengths.size),
                "shuffle": self.shuffle}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next iteration continues mid-epoch.

        Raises:
            ValueError: if the state was saved for different data, batch size, seed or shuffling
                (resuming would repeat or skip items), or its position is out of range.
        """
        for name in ("seed", "batch_size", "num_items", "shuffle"):
            mine = self.state_dict()[name]
            if name in state and state[name] != mine:
                raise ValueError(f"sampler state was saved with {name}={state[name]!r}, "
                                 f"this sampler has {name}={mine!r}")
        position = int(state.get("position", 0))
        if not 0 <= position <= len(self):
            raise ValueError(f"sampler position {position} outside 0..{len(self)}")
        self.epoch = int(state.get("epoch", 0))
        self.position = position
