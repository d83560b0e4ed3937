"""Length-grouped batching: each index once per epoch, little padding, resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from whisper_ja.data.batching import LengthGroupedSampler


def _lengths(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(100, 900, size=n)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 700), batch_size=st.integers(1, 40), seed=st.integers(0, 5),
       shuffle=st.booleans())
def test_every_index_exactly_once_per_epoch(n, batch_size, seed, shuffle):
    sampler = LengthGroupedSampler(_lengths(n, seed), batch_size, seed=seed, shuffle=shuffle)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(n))


def test_grouping_cuts_padding():
    lengths = _lengths(2000)
    sampler = LengthGroupedSampler(lengths, 8, seed=0)
    grouped = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in sampler)
    order = np.random.default_rng(0).permutation(lengths.size)
    random = sum(lengths[b].max() * len(b) - lengths[b].sum()
                 for b in np.array_split(order, len(sampler)))
    assert grouped < 0.1 * random


def test_deterministic_per_seed_and_epoch_but_varies_between_epochs():
    lengths = _lengths(300)
    a = LengthGroupedSampler(lengths, 8, seed=1)
    b = LengthGroupedSampler(lengths, 8, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(LengthGroupedSampler(lengths, 8, seed=2)) != list(b)


def test_no_shuffle_is_sorted_longest_first():
    lengths = [5, 1, 9, 3, 7]
    batches = list(LengthGroupedSampler(lengths, 2, shuffle=False))
    assert batches == [[2, 4], [0, 3], [1]]


def test_resume_mid_epoch():
    lengths = _lengths(100)
    sampler = LengthGroupedSampler(lengths, 8, seed=3)
    sampler.set_epoch(2)
    full = sampler.batches()
    seen = []
    for batch in sampler:
        seen.append(batch)
        if len(seen) == 5:
            break
    state = sampler.state_dict()
    assert state["position"] == 5 and state["epoch"] == 2

    resumed = LengthGroupedSampler(lengths, 8, seed=3)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a training loop calls this again; it must not restart the epoch
    rest = list(resumed)
    assert seen + rest == full
    assert sorted(i for b in seen + rest for i in b) == list(range(100))
    assert resumed.position == 0  # epoch finished
    resumed.set_epoch(3)
    assert sorted(i for b in resumed for i in b) == list(range(100))


def test_resume_rejects_other_data():
    state = LengthGroupedSampler(_lengths(50), 8, seed=0).state_dict()
    with pytest.raises(ValueError, match="num_items"):
        LengthGroupedSampler(_lengths(51), 8).load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size"):
        LengthGroupedSampler(_lengths(50), 4).load_state_dict(state)
    with pytest.raises(ValueError, match="position"):
        LengthGroupedSampler(_lengths(50), 8).load_state_dict({**state, "position": 99})


@pytest.mark.parametrize(("lengths", "batch_size"), [([], 2), ([1, -1], 2), ([1, 2], 0)])
def test_bad_arguments(lengths, batch_size):
    with pytest.raises(ValueError):
        LengthGroupedSampler(lengths, batch_size)


def test_works_as_dataloader_batch_sampler():
    lengths = _lengths(30)
    data = torch.arange(30)
    loader = torch.utils.data.DataLoader(
        data, batch_sampler=LengthGroupedSampler(lengths, 4, seed=0))
    items = torch.cat(list(loader))
    assert sorted(items.tolist()) == list(range(30))
