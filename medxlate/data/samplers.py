"""Training samplers over the disk cache: ``slices`` (2D / 2.5D) and ``patches`` (3D).

Both are map-style datasets whose items are dicts ``source``, ``target``, ``mask`` (torch tensors,
channels first). Randomness (flips, patch centres) comes only from a NumPy ``RandomState`` seeded
with :func:`item_seed` ``(seed, epoch, index)``, handed to MONAI's randomisable dictionary
transforms through ``set_random_state``: an item is the same whichever process, worker or resumed
run draws it, so mid-epoch resume and distributed sampling stay exact. Call :meth:`set_epoch`
before each epoch (as with ``DistributedSampler``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import Compose, DivisiblePadd, RandFlipd, SpatialPadd
from monai.transforms.utils import generate_pos_neg_label_crop_centers
from torch.utils.data import Dataset

from medxlate.data.cache import CachedCase, VolumeReader

logger = logging.getLogger(__name__)

KEYS = ("source", "target", "mask")
IMAGE_KEYS = ("source", "target")
AIR = -1.0  # images are in [-1, 1]; -1 is the value of air, used for padding


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one item, a pure function of ``(seed, epoch, index)``."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def _flip(flip_prob: float) -> Compose:
    """Random left-right (X) flip of every key, as a MONAI dictionary transform."""
    return Compose([RandFlipd(keys=KEYS, prob=flip_prob, spatial_axis=0)])


def _plain(item: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop MONAI metadata so items collate as plain tensors."""
    return {key: torch.as_tensor(value).as_subclass(torch.Tensor) for key, value in item.items()}


class _EpochSampled(Dataset):
    """Shared by the samplers: reader, seed, epoch and the seeded augmentation."""

    def __init__(self, reader: VolumeReader, seed: int, flip_prob: float) -> None:
        self.reader = reader
        self.seed = seed
        self.epoch = 0
        self.augment = _flip(flip_prob)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws items use."""
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.RandomState:
        return np.random.RandomState(item_seed(self.seed, self.epoch, index))

    def _augmented(self, item: dict[str, torch.Tensor], rng: np.random.RandomState) -> dict[str, torch.Tensor]:
        self.augment.set_random_state(seed=int(rng.randint(np.iinfo(np.int32).max)))
        return _plain(self.augment(item))


class SliceSampler(_EpochSampled):
    """Every axial slice that contains body, with ``context_slices`` neighbours as channels (2.5D).

    Items: ``source`` (C*(2k+1), X', Y'), ``target`` and ``mask`` (1, X', Y'), in-plane padded
    symmetrically to a multiple of ``divisible`` (images with -1, the mask with 0); neighbours
    beyond the volume repeat its first/last slice, as at inference.

    Args:
        cases: Cached cases.
        reader: Reads their arrays.
        context_slices: Neighbours on each side.
        divisible: In-plane size multiple the generator needs.
        flip_prob: Probability of a left-right flip.
        seed: Base seed of the per-item random draws.
    """

    def __init__(
        self,
        cases: Sequence[CachedCase],
        reader: VolumeReader,
        context_slices: int = 0,
        divisible: int = 1,
        flip_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(reader, seed, flip_prob)
        self.cases = list(cases)
        self.context_slices = context_slices
        self.index = [(number, z) for number, case in enumerate(self.cases) for z in case.body_slices]
        self.pad = Compose(
            [
                DivisiblePadd(keys=IMAGE_KEYS, k=divisible, method="symmetric", value=AIR),
                DivisiblePadd(keys="mask", k=divisible, method="symmetric", value=0.0),
            ]
        )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        number, z = self.index[index]
        depth = self.cases[number].shape[2]
        k = self.context_slices
        window = np.clip(np.arange(z - k, z + k + 1), 0, depth - 1)
        everything = slice(None)
        source = self.reader.region(number, "source", window, everything, everything)  # (2k+1, C, X, Y)
        item = {
            "source": torch.from_numpy(source.reshape(-1, *source.shape[2:])),  # (C*(2k+1), X, Y), z-k first
            "target": torch.from_numpy(
                self.reader.region(number, "target", slice(z, z + 1), everything, everything)[0]
            ),
            "mask": torch.from_numpy(
                self.reader.region(number, "mask", slice(z, z + 1), everything, everything)[0].astype(np.float32)
            ),
        }
        return self._augmented(self.pad(item), self._rng(index))


class PatchSampler(_EpochSampled):
    """Random 3D patches, centred on a body voxel with probability ``foreground_prob``.

    Centres come from MONAI's ``generate_pos_neg_label_crop_centers`` (the sampler inside
    ``RandCropByPosNegLabeld``) over body/background indices precomputed in the cache; only the
    patch is then read from disk. An epoch has ``patches_per_volume`` items per volume (item ``i``
    comes from volume ``i mod n``). A volume smaller than the patch along an axis is taken whole
    along it and padded symmetrically (images with -1, the value of air; the mask with 0).

    Items: ``source`` (C, *patch_size), ``target`` and ``mask`` (1, *patch_size).

    Args:
        cases: Cached cases.
        reader: Reads their arrays.
        patch_size: (X, Y, Z) voxels.
        patches_per_volume: Items per volume and epoch.
        foreground_prob: Probability of a body-centred patch.
        flip_prob: Probability of a left-right flip.
        seed: Base seed of the per-item random draws.
    """

    def __init__(
        self,
        cases: Sequence[CachedCase],
        reader: VolumeReader,
        patch_size: Sequence[int],
        patches_per_volume: int = 8,
        foreground_prob: float = 0.9,
        flip_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(reader, seed, flip_prob)
        self.cases = list(cases)
        self.patch_size = tuple(int(s) for s in patch_size)
        self.patches_per_volume = patches_per_volume
        self.foreground_prob = foreground_prob
        self.pad = Compose(
            [
                SpatialPadd(keys=IMAGE_KEYS, spatial_size=self.patch_size, method="symmetric", value=AIR),
                SpatialPadd(keys="mask", spatial_size=self.patch_size, method="symmetric", value=0.0),
            ]
        )
        for case in self.cases:
            if any(v < p for v, p in zip(case.shape, self.patch_size, strict=True)):
                logger.info(
                    "case %s: volume %s is smaller than data.patch_size %s; patches are padded with air",
                    case.case_id,
                    case.shape,
                    self.patch_size,
                )

    def __len__(self) -> int:
        return len(self.cases) * self.patches_per_volume

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        number = index % len(self.cases)
        case = self.cases[number]
        rng = self._rng(index)
        with warnings.catch_warnings():  # a volume without background (no mask) is fine: body centres only
            warnings.simplefilter("ignore", UserWarning)
            (center,) = generate_pos_neg_label_crop_centers(
                self.patch_size,
                1,
                self.foreground_prob,
                case.shape,
                self.reader.indices(number, "fg"),
                self.reader.indices(number, "bg"),
                rng,
                allow_smaller=True,
            )
        x, y, z = (
            slice(c - min(p, s) // 2, c - min(p, s) // 2 + min(p, s))
            for c, p, s in zip(center, self.patch_size, case.shape, strict=True)
        )
        item = {}
        for key in KEYS:
            region = self.reader.region(number, key, z, x, y)  # (Z', C, X', Y')
            item[key] = torch.from_numpy(np.ascontiguousarray(np.moveaxis(region, 0, -1)).astype(np.float32))
        return self._augmented(self.pad(item), rng)
