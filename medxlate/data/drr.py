"""X-ray -> CT training data: CTs on the model grid, cached on disk, and DRR views rendered on the fly.

* :func:`build_grid_cache`: each CT (and mask) of :func:`medxlate.data.ct_source.read_ct_source`
  (a prepared dataset or a folder of CTs) resampled once onto the model grid
  (:func:`medxlate.xray.drr_data.to_model_grid`) and saved as ``.npy`` in an entry named by a hash
  of the case's content key, inside a folder named by a hash of the grid settings, so another CT
  or grid never reuses it. Training memory-maps the files: RAM stays bounded by what a step touches.
* :class:`DrrTrainingSet`: item ``i`` is CT ``i // items_per_volume`` turned by a small random pose
  (:func:`medxlate.xray.drr_data.jitter_pose`), its clean DRRs for every view, the augmented views
  the generator sees (:func:`medxlate.xray.drr_data.augment_views`) and the CT in model units.
  Every random draw comes from a generator seeded by ``(seed, epoch, i)``: an item is the same
  whichever worker or process loads it, and a resumed run sees the same items.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from torch.utils.data import Dataset as TorchDataset

from medxlate.data.ct_source import CtCase
from medxlate.errors import InputDataError
from medxlate.io.atomic import atomic_path, write_bytes_atomic

__all__ = ["DrrTrainingSet", "GridCT", "build_grid_cache"]

_CACHE_VERSION = 2  # 2: one folder per grid, one entry per CT content key


@dataclass(frozen=True)
class GridCT:
    """A cached CT on the model grid.

    Attributes:
        id: The case id.
        ct_path: ``.npy`` file of the ``(S, S, S)`` float32 CT in HU.
        mask_path: ``.npy`` file of the ``(S, S, S)`` uint8 body mask.
        affine: ``(4, 4)`` grid affine (centred on the CT's centre).
        record: The grid record (spacing, field, coverage).
    """

    id: str
    ct_path: Path
    mask_path: Path
    affine: torch.Tensor
    record: dict[str, Any]

    def ct(self) -> np.ndarray:
        """The CT, memory-mapped (read-only)."""
        return np.load(self.ct_path, mmap_mode="r")

    def mask(self) -> np.ndarray:
        """The body mask, memory-mapped (read-only)."""
        return np.load(self.mask_path, mmap_mode="r")


def _digest(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def build_grid_cache(
    cases: Sequence[CtCase], size: int, fov_mm: float, min_coverage: float, cache_dir: Path
) -> list[GridCT]:
    """Resample each case's CT and mask onto the model grid once and cache them as ``.npy``.

    The grid settings name the folder, ``cache_dir/xray_grid_<hash of size, field, coverage>``, and
    each case's content key (:attr:`medxlate.data.ct_source.CtCase.key`) its subfolder: a changed
    CT or grid builds a new entry instead of reusing a stale one, and an unchanged CT is reused
    even when other cases come or go. An entry is complete when its ``record.json`` exists
    (written last, atomically).

    Args:
        cases: The CTs (:func:`medxlate.data.ct_source.read_ct_source`).
        size: Voxels per side of the model grid.
        fov_mm: Field of view per side (mm).
        min_coverage: Smallest fraction of the field a CT must span along every axis.
        cache_dir: Where the cache folder goes.

    Returns:
        One cached CT per case, in order.

    Raises:
        InputDataError: naming the file (or series), if a CT covers too little of the field, is not
            a 3D volume or cannot be read.
    """
    from medxlate.xray.cases import grid_mask
    from medxlate.xray.drr_data import to_model_grid

    settings = {"version": _CACHE_VERSION, "size": size, "fov_mm": fov_mm, "min_coverage": min_coverage}
    folder = Path(cache_dir) / f"xray_grid_{_digest(settings)}"
    out: list[GridCT] = []
    for case in cases:
        case_dir = folder / _digest(case.key)
        record_path = case_dir / "record.json"
        if not record_path.is_file():
            ct, mask = case.load()
            try:
                grid, record = to_model_grid(ct, size, fov_mm, min_coverage)
            except InputDataError as e:
                raise InputDataError(f"{case.label}: {e} (set xray.min_coverage or xray.fov_mm)") from e
            body = grid_mask(mask, grid)[0] if mask is not None else torch.ones(grid.shape[1:], dtype=torch.bool)
            case_dir.mkdir(parents=True, exist_ok=True)
            for name, array in (("ct.npy", grid.as_tensor()[0].numpy()), ("mask.npy", body.numpy().astype(np.uint8))):
                with atomic_path(case_dir / name) as tmp, open(tmp, "wb") as handle:
                    np.save(handle, array)
            record["affine"] = torch.as_tensor(grid.affine, dtype=torch.float64).tolist()
            write_bytes_atomic(record_path, json.dumps(record).encode())
        record = json.loads(record_path.read_text())
        affine = torch.tensor(record.pop("affine"), dtype=torch.float64)
        out.append(GridCT(case.id, case_dir / "ct.npy", case_dir / "mask.npy", affine, record))
    return out


class DrrTrainingSet(TorchDataset):
    """Training items ``{"source": views (V, S, S), "target": CT (1, S, S, S), "views_clean": (V, S, S)}``.

    Args:
        volumes: The cached CTs on the model grid.
        geometries: One :class:`medxlate.xray.Geometry` per view.
        ct_window: HU window mapped to the model's [-1, 1].
        items_per_volume: Items per CT and epoch.
        pose_jitter_deg: Largest random rotation about each axis (0: none).
        augmentation: View augmentation ranges, or ``None`` for none.
        seed: Base seed of every random draw.
    """

    def __init__(
        self,
        volumes: Sequence[GridCT],
        geometries: Sequence[Any],
        ct_window: tuple[float, float],
        items_per_volume: int,
        pose_jitter_deg: float,
        augmentation: Any | None,
        seed: int,
    ) -> None:
        self.volumes = list(volumes)
        self.geometries = list(geometries)
        self.ct_window = ct_window
        self.items_per_volume = items_per_volume
        self.pose_jitter_deg = pose_jitter_deg
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the next epoch's poses and augmentations."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.volumes) * self.items_per_volume

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from medxlate.transforms.intensity import window_to_unit
        from medxlate.xray.cases import render_views
        from medxlate.xray.drr_data import augment_views, jitter_pose, to_model_grid

        volume = self.volumes[index // self.items_per_volume]
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_033 + index)
        ct = torch.from_numpy(np.array(volume.ct(), dtype=np.float32))[None]  # (1, S, S, S) HU
        if self.pose_jitter_deg > 0:
            turned = jitter_pose(volume.affine, tuple(ct.shape[1:]), self.pose_jitter_deg, generator)
            ct = to_model_grid(MetaTensor(ct, affine=turned), ct.shape[1], volume.record["fov_mm"], 0.0)[0]
            ct = ct.as_tensor()
        clean = render_views(ct[None], volume.affine, self.geometries)[0]  # (V, S, S)
        views = clean if self.augmentation is None else augment_views(clean, self.augmentation, generator)[0]
        return {"source": views, "target": window_to_unit(ct, self.ct_window), "views_clean": clean}
