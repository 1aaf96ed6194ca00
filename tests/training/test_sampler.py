"""The resumable distributed batch sampler: exact coverage, padding, resume and rank agreement."""

from __future__ import annotations

import pytest

from medxlate.training.sampler import ResumableBatchSampler, epoch_permutation


def _epoch(length: int, batch: int, world: int, epoch: int = 0) -> list[list[list[int]]]:
    """Per rank, the batches of one epoch."""
    samplers = [ResumableBatchSampler(length, batch, seed=3, rank=r, world_size=world) for r in range(world)]
    for sampler in samplers:
        sampler.set_epoch(epoch)
    return [list(sampler) for sampler in samplers]


@pytest.mark.parametrize(("length", "batch", "world"), [(24, 4, 2), (23, 4, 2), (10, 6, 3), (7, 4, 4), (5, 2, 1)])
def test_every_sample_once_per_epoch_across_ranks(length: int, batch: int, world: int) -> None:
    per_rank = _epoch(length, batch, world)
    steps = -(-length // batch)
    assert all(len(batches) == steps for batches in per_rank)  # same number of steps on every rank
    seen = sorted(i for batches in per_rank for b in batches for i in b)
    remainder = length % batch
    padding = world - remainder if 0 < remainder < world else 0
    assert len(seen) == length + padding
    assert sorted(set(seen)) == list(range(length))
    assert all(len(b) >= 1 for batches in per_rank for b in batches)


def test_padding_repeats_the_first_samples_of_the_epoch_only_when_a_rank_would_be_empty() -> None:
    per_rank = _epoch(7, 4, 4)  # last global batch: 3 samples for 4 ranks -> 1 repeated
    order = epoch_permutation(7, 3, 0)
    assert [batches[-1] for batches in per_rank] == [[order[4]], [order[5]], [order[6]], [order[0]]]
    assert sum(len(b) for batches in _epoch(23, 4, 2) for b in batches) == 23  # 3 left for 2 ranks: none


def test_ranks_share_the_global_batches_of_one_process() -> None:
    single = _epoch(22, 4, 1, epoch=2)[0]
    ranks = _epoch(22, 4, 2, epoch=2)
    for step, batch in enumerate(single):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(batch)


def test_resume_mid_epoch_yields_the_remaining_batches() -> None:
    sampler = ResumableBatchSampler(30, 4, seed=1, rank=1, world_size=2)
    sampler.set_epoch(5)
    full = list(sampler)
    state = sampler.state_dict(position=3)
    other = ResumableBatchSampler(30, 4, seed=1, rank=1, world_size=2)
    other.load_state_dict(state)
    assert list(other) == full[3:]
    assert (state["epoch"], state["position"]) == (5, 3)
    sampler.set_epoch(6)
    assert list(sampler) != full  # a new order each epoch


def test_state_of_another_dataset_is_refused() -> None:
    state = ResumableBatchSampler(30, 4, seed=1).state_dict(position=0)
    with pytest.raises(ValueError, match="sampler length differs: checkpoint 30, now 31"):
        ResumableBatchSampler(31, 4, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        ResumableBatchSampler(31, 4, seed=1, world_size=3)
