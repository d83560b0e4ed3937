"""Streamed batching: a bounded shuffle buffer and duration-bucketed dynamic batches.

A streamed corpus is never held whole, so it is shuffled as WebDataset, Lhotse and
``datasets`` streaming do: the order of its pieces is shuffled, then a buffer of a bounded
number of clips mixes neighbours. Batches are then formed by length, as NeMo's and icefall's
dynamic bucketing samplers do: clips go into buckets by duration, and a bucket leaves as a batch
once it holds ``max_duration`` seconds of padded audio (clips times its longest clip: what the
encoder runs on under dynamic context) or ``batch_size`` clips. Both are pure functions of their
input and random generator, so replaying them reproduces the same batches (exact resume).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import numpy as np

__all__ = ["bucketed_batches", "shuffled"]

T = TypeVar("T")


def shuffled(items: Iterable[T], size: int, rng: np.random.Generator) -> Iterator[T]:
    """``items`` in a random order drawn through a buffer of ``size`` items (memory bound).

    Args:
        items: The stream.
        size: Buffer size; 0 or 1 keeps the order.
        rng: The generator (seeded by the caller per epoch and reader).
    """
    buffer: list[T] = []
    for item in items:
        if len(buffer) < max(size, 1):
            buffer.append(item)
            continue
        index = int(rng.integers(len(buffer)))
        yield buffer[index]
        buffer[index] = item
    for index in rng.permutation(len(buffer)) if size > 1 else range(len(buffer)):
        yield buffer[int(index)]


def bucketed_batches(items: Iterable[T], seconds: Callable[[T], float], *, batch_size: int,
                     max_duration: float, boundaries: Sequence[float]) -> Iterator[list[T]]:
    """Batches of items of similar duration.

    Args:
        items: The (shuffled) stream.
        seconds: Duration of an item.
        batch_size: Most items per batch.
        max_duration: Most seconds of padded audio per batch (items x the longest); 0 = by
            ``batch_size`` alone.
        boundaries: Bucket edges in seconds, ascending (``(5, 10)``: three buckets).

    Yields:
        Each batch when its bucket is full; at the end, the partly filled buckets, shortest
        first.
    """
    edges = sorted(boundaries)
    buckets: list[list[T]] = [[] for _ in range(len(edges) + 1)]
    longest = [0.0] * len(buckets)
    for item in items:
        length = seconds(item)
        number = bisect.bisect_left(edges, length)
        bucket = buckets[number]
        if max_duration and bucket and (len(bucket) + 1) * max(longest[number], length) \
                > max_duration:
            yield bucket
            bucket = buckets[number] = []
            longest[number] = 0.0
        bucket.append(item)
        longest[number] = max(longest[number], length)
        if len(bucket) >= batch_size:
            yield bucket
            buckets[number] = []
            longest[number] = 0.0
    yield from (bucket for bucket in buckets if bucket)
