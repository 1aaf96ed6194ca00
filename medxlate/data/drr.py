"""X-ray -> CT training data: CTs on the model grid, cached on disk, and DRR views rendered on the fly.

* :func:`ct_cases`: the cases of a prepared dataset as X-ray -> CT reads them: its CT role (whichever
  role holds CT) and body mask; the other modality is not used.
* :func:`build_grid_cache`: each CT (and mask) resampled once onto the model grid
  (:func:`medxlate.xray.drr_data.to_model_grid`) and saved as ``.npy`` under a folder named by a
  hash of the dataset's index and the grid settings, so another dataset or grid never reuses it.
  Training memory-maps the files: RAM stays bounded by what a step touches.
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

from medxlate.data.dataset import DATASET_FILE, Case, Dataset
from medxlate.errors import InputDataError
from medxlate.io.atomic import atomic_path, write_bytes_atomic

__all__ = ["CtCase", "DrrTrainingSet", "GridCT", "build_grid_cache", "ct_cases"]

_CACHE_VERSION = 1


@dataclass(frozen=True)
class CtCase:
    """One CT of a dataset, as X-ray -> CT uses it."""

    id: str
    ct: Path
    mask: Path | None


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


def ct_cases(dataset: Dataset, split: str) -> list[CtCase]:
    """The split's cases with the dataset role that holds CT (and the body mask).

    Raises:
        InputDataError: if neither role of the dataset is CT.
    """
    modalities = (dataset.source_modality.upper(), dataset.target_modality.upper())
    if "CT" not in modalities:
        raise InputDataError(
            f"{dataset.root}: X-ray -> CT trains on CT volumes; this dataset holds {modalities[0]} and {modalities[1]}"
        )
    role = "source" if modalities[0] == "CT" else "target"
    return [_ct_case(case, role) for case in dataset.split(split)]


def _ct_case(case: Case, role: str) -> CtCase:
    return CtCase(case.id, case.source if role == "source" else case.target, case.mask)


def _cache_key(dataset: Dataset, cases: Sequence[CtCase], settings: dict[str, Any]) -> str:
    index = hashlib.sha256((dataset.root / DATASET_FILE).read_bytes()).hexdigest()
    content = {"version": _CACHE_VERSION, "dataset_index": index, "cases": [c.id for c in cases], **settings}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def build_grid_cache(
    dataset: Dataset, cases: Sequence[CtCase], size: int, fov_mm: float, min_coverage: float, cache_dir: Path
) -> list[GridCT]:
    """Resample each case's CT and mask onto the model grid once and cache them as ``.npy``.

    The cache folder is ``cache_dir/xray_grid_<key>``, the key a hash of the dataset's index
    (``dataset.json``, which holds every file's checksum), the case ids and the grid settings: a
    changed dataset or grid builds a new folder instead of reusing a stale one. A case is complete
    when its ``record.json`` exists (written last, atomically).

    Raises:
        InputDataError: naming the file, if a CT covers too little of the field.
    """
    from medxlate.io import load_volume
    from medxlate.xray.cases import grid_mask
    from medxlate.xray.drr_data import to_model_grid

    settings = {"size": size, "fov_mm": fov_mm, "min_coverage": min_coverage}
    folder = Path(cache_dir) / f"xray_grid_{_cache_key(dataset, cases, settings)}"
    out: list[GridCT] = []
    for case in cases:
        case_dir = folder / case.id
        record_path = case_dir / "record.json"
        if not record_path.is_file():
            ct = load_volume(case.ct)
            try:
                grid, record = to_model_grid(ct, size, fov_mm, min_coverage)
            except InputDataError as e:
                raise InputDataError(f"{case.ct}: {e} (set xray.min_coverage or xray.fov_mm)") from e
            if case.mask is not None:
                body = grid_mask(load_volume(case.mask), grid)[0]
            else:
                body = torch.ones(grid.shape[1:], dtype=torch.bool)
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
