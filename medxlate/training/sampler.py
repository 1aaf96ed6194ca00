"""A resumable, distributed batch sampler whose whole state is ``(epoch, position)``.

Each epoch draws one permutation of the dataset from ``(seed, epoch)`` alone, cuts it into global
batches of ``batch_size`` samples (the last one may be smaller, as with ``drop_last=False``) and
gives every rank an interleaved share of each global batch (rank ``r`` takes items ``r, r + W, ...``).
So in one epoch every sample is seen exactly once over all ranks, and one process with batch ``B``
sees the same global batches as ``W`` processes with ``B / W`` each.

Padding: only when the last global batch holds fewer samples than there are ranks (a rank would
otherwise get an empty batch and stall the gradient all-reduce) is it filled up with the first
samples of the epoch's permutation: at most ``W - 1`` repeated samples per epoch, none otherwise.

``position`` counts the batches the training loop has consumed in the current epoch; restoring
``(epoch, position)`` continues mid-epoch with exactly the batches an uninterrupted run would take.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_permutation(length: int, seed: int, epoch: int) -> list[int]:
    """The sample order of one epoch: a pure function of ``(length, seed, epoch)``."""
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(length, generator=generator).tolist()


def global_batches(length: int, batch_size: int, world_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's global batches (before they are shared out to ranks), padded as described above."""
    order = epoch_permutation(length, seed, epoch)
    batches = [order[start : start + batch_size] for start in range(0, length, batch_size)]
    if batches and len(batches[-1]) < world_size:
        batches[-1] = batches[-1] + order[: world_size - len(batches[-1])]
    return batches


class ResumableBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices for one rank; see the module docstring for the semantics.

    Args:
        length: Number of samples in the dataset.
        batch_size: Global batch size (all ranks together); must be divisible by ``world_size``.
        seed: Seed of the epoch permutations.
        rank: This process's rank.
        world_size: Number of processes.

    Raises:
        ValueError: for an empty dataset or a batch size not divisible by the world size.
    """

    def __init__(self, length: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if length < 1:
            raise ValueError("the training dataset is empty")
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} processes")
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank)."""
        return -(-self.length // self.batch_size)

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        """Start ``epoch`` (0-based) at batch ``position`` of this rank."""
        self.epoch, self.position = int(epoch), int(position)

    def __iter__(self) -> Iterator[list[int]]:
        batches = global_batches(self.length, self.batch_size, self.world_size, self.seed, self.epoch)
        for batch in batches[self.position :]:
            yield batch[self.rank :: self.world_size]

    def state_dict(self, position: int) -> dict[str, int]:
        """The state after ``position`` batches of the current epoch were consumed.

        The consumer counts batches itself: a DataLoader with workers draws from the sampler ahead
        of what the training loop has used.
        """
        return {
            "epoch": self.epoch,
            "position": int(position),
            "seed": self.seed,
            "length": self.length,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore a state saved by :meth:`state_dict`.

        Raises:
            ValueError: if the saved order belongs to a different dataset, seed or batch size.
        """
        for key in ("seed", "length", "batch_size"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(f"sampler {key} differs: checkpoint {state[key]}, now {getattr(self, key)}")
        self.set_epoch(int(state["epoch"]), int(state["position"]))
