"""Axial-slice dataset (2D / 2.5D) over in-memory paired volumes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from medxlate.data.volumes import PairedVolume
from medxlate.transforms import pad_in_plane, stack_context


class SliceDataset(Dataset):
    """Every axial slice of every volume that contains body, as a training pair.

    Items are dicts with ``source`` (C*(2k+1), X', Y'), ``target`` (1, X', Y') and ``mask``
    (1, X', Y'), in-plane padded to a multiple of ``divisible`` (images with -1, the value of air).

    Args:
        volumes: Paired volumes on the canonical grid.
        context_slices: Neighbouring slices on each side stacked as channels (2.5D).
        divisible: In-plane size multiple required by the generator.
        flip_prob: Probability of flipping a pair left-right (sampled per item with torch's RNG).
    """

    def __init__(
        self,
        volumes: Sequence[PairedVolume],
        context_slices: int = 0,
        divisible: int = 1,
        flip_prob: float = 0.0,
    ) -> None:
        self.flip_prob = flip_prob
        self._sources: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._masks: list[torch.Tensor] = []
        self._index: list[tuple[int, int]] = []
        for number, volume in enumerate(volumes):
            source, _ = pad_in_plane(stack_context(volume.source.as_tensor(), context_slices), divisible, -1.0)
            target, _ = pad_in_plane(volume.target.as_tensor(), divisible, -1.0)
            mask, _ = pad_in_plane(volume.mask.float(), divisible, 0.0)
            self._sources.append(source)
            self._targets.append(target)
            self._masks.append(mask)
            body_slices = torch.nonzero(volume.mask.flatten(0, 2).any(dim=0)).flatten().tolist()
            self._index.extend((number, z) for z in body_slices)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        number, z = self._index[item]
        pair = {
            "source": self._sources[number][..., z],
            "target": self._targets[number][..., z],
            "mask": self._masks[number][..., z],
        }
        if self.flip_prob > 0 and float(torch.rand(())) < self.flip_prob:
            pair = {key: value.flip(-2) for key, value in pair.items()}  # flip X (left-right)
        return pair
