"""Dataset fingerprint: intensity and geometry statistics preprocessing relies on (``fingerprint.json``).

Per image role (``source``, ``target``, extra roles; masks are summarised separately):

* intensity percentiles (0.5, 1, 5, 50, 95, 99, 99.5), mean, std, min, max, over all voxels
  (``overall``) and inside the body mask (``mask``), pooled over cases;
* spacing (median, min, max per axis, mm), shape (median, min, max per axis), orientation codes
  (e.g. ``{"LAS": 3}``), number of cases.

Percentiles are computed with NumPy's default (linear) method on the pooled voxels; a case with
more than ``samples_per_case`` voxels contributes a random subset drawn with a seed fixed per case
(as nnU-Net does), so the result is deterministic. Mean, std, min and max are exact. Numbers are
rounded to 6 significant digits, so the ``fingerprint_hash`` (SHA-256 of the canonical JSON) is
stable across runs. ``dataset_index_sha256`` records which ``dataset.json`` it describes (outside
the hash); :func:`load_fingerprint` ignores a fingerprint whose dataset has changed since.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medxlate.data.build import is_label_role
from medxlate.data.dataset import DATASET_FILE, Dataset, read_dataset
from medxlate.errors import InputDataError
from medxlate.io.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

__all__ = ["FINGERPRINT_FILE", "PERCENTILES", "fingerprint_dataset", "fingerprint_hash", "load_fingerprint"]

FINGERPRINT_FILE = "fingerprint.json"
PERCENTILES = (0.5, 1.0, 5.0, 50.0, 95.0, 99.0, 99.5)
_UNHASHED = ("fingerprint_hash", "dataset_index_sha256")


def _round(value: float) -> float:
    return float(f"{float(value):.6g}")


def _sample(values: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if values.size <= limit:
        return values
    return values[np.sort(np.random.default_rng(seed).choice(values.size, size=limit, replace=False))]


class _Pool:
    """Accumulates one region's voxels of one role over cases: a sample plus exact moments."""

    def __init__(self) -> None:
        self.samples: list[np.ndarray] = []
        self.count, self.total, self.squares = 0, 0.0, 0.0
        self.low, self.high = np.inf, -np.inf

    def add(self, values: np.ndarray, limit: int, seed: int) -> None:
        if values.size == 0:
            return
        self.samples.append(_sample(values, limit, seed).astype(np.float32))
        self.count += values.size
        self.total += float(values.sum(dtype=np.float64))
        self.squares += float(np.square(values, dtype=np.float64).sum())
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))

    def summary(self) -> dict[str, Any]:
        if not self.count:
            return {"voxels": 0}
        pooled = np.concatenate(self.samples).astype(np.float64)
        mean = self.total / self.count
        std = np.sqrt(max(self.squares / self.count - mean * mean, 0.0))
        stats = {f"p{q:g}": _round(v) for q, v in zip(PERCENTILES, np.percentile(pooled, PERCENTILES), strict=True)}
        return {
            **stats,
            "mean": _round(mean),
            "std": _round(std),
            "min": _round(self.low),
            "max": _round(self.high),
            "voxels": self.count,
        }


def _axis_stats(rows: Sequence[Sequence[float]]) -> dict[str, list[float]]:
    table = np.asarray(rows, dtype=np.float64)
    return {
        name: [_round(v) for v in fn(table, axis=0)]
        for name, fn in (("median", np.median), ("min", np.min), ("max", np.max))
    }


def _role_stats(dataset: Dataset, role: str, samples_per_case: int) -> dict[str, Any]:
    from medxlate.io import load_volume

    pools = {"overall": _Pool(), "mask": _Pool()}
    spacings, shapes, orientations = [], [], {}
    cases = [case for case in dataset.cases if role in case.files]
    for number, case in enumerate(cases):
        volume = load_volume(case.files[role])
        values = volume.as_tensor().numpy()[0]
        affine = volume.affine.double().numpy()
        spacings.append(np.linalg.norm(affine[:3, :3], axis=0).tolist())
        shapes.append(list(values.shape))
        code = "".join(nib.orientations.aff2axcodes(affine))
        orientations[code] = orientations.get(code, 0) + 1
        pools["overall"].add(values.ravel(), samples_per_case, seed=number)
        if case.mask is not None:
            mask = load_volume(case.mask).as_tensor().numpy()[0] > 0.5
            pools["mask"].add(values[mask], samples_per_case, seed=number)
    return {
        "cases": len(cases),
        "intensity": {region: pool.summary() for region, pool in pools.items()},
        "spacing": _axis_stats(spacings),
        "shape": _axis_stats(shapes),
        "orientation": dict(sorted(orientations.items())),
    }


def _mask_stats(dataset: Dataset) -> dict[str, Any]:
    from medxlate.io import load_volume

    fractions = [
        float((load_volume(case.mask).as_tensor().numpy() > 0.5).mean()) for case in dataset.cases if case.mask
    ]
    if not fractions:
        return {"cases": 0}
    return {"cases": len(fractions), "fraction": _axis_stats([[f] for f in fractions])}


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a fingerprint (its own hash and dataset marker left out).

    Args:
        fingerprint: As returned by :func:`fingerprint_dataset`.

    Returns:
        Hex digest.
    """
    content = {k: v for k, v in fingerprint.items() if k not in _UNHASHED}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _index_sha256(root: Path) -> str:
    return hashlib.sha256((root / DATASET_FILE).read_bytes()).hexdigest()


def fingerprint_dataset(root: str | Path, *, samples_per_case: int = 100_000, write: bool = True) -> dict[str, Any]:
    """Compute the dataset fingerprint and (by default) write ``fingerprint.json`` into the dataset.

    Args:
        root: Dataset folder.
        samples_per_case: Most voxels per case and region pooled for the percentiles.
        write: Write ``<root>/fingerprint.json`` atomically (unchanged content: not rewritten).

    Returns:
        The fingerprint, with ``fingerprint_hash`` and ``dataset_index_sha256``.

    Raises:
        InputDataError: The dataset cannot be read (see :func:`~medxlate.data.dataset.read_dataset`).
    """
    if samples_per_case < 1:
        raise InputDataError(f"samples_per_case is {samples_per_case}; expected a positive number of voxels")
    dataset = read_dataset(root)
    image_roles = sorted({role for case in dataset.cases for role in case.files if not is_label_role(role)})
    fingerprint: dict[str, Any] = {
        "format": "medxlate-fingerprint",
        "version": 1,
        "cases": len(dataset.cases),
        "splits": {split: len(dataset.split(split)) for split in ("train", "val", "test")},
        "modalities": {"source": dataset.source_modality, "target": dataset.target_modality},
        "percentiles": list(PERCENTILES),
        "samples_per_case": samples_per_case,
        "roles": {role: _role_stats(dataset, role, samples_per_case) for role in image_roles},
        "mask": _mask_stats(dataset),
    }
    fingerprint["fingerprint_hash"] = fingerprint_hash(fingerprint)
    fingerprint["dataset_index_sha256"] = _index_sha256(dataset.root)
    if write:
        data = (json.dumps(fingerprint, indent=2, sort_keys=True) + "\n").encode("utf-8")
        path = dataset.root / FINGERPRINT_FILE
        if not (path.is_file() and path.read_bytes() == data):
            write_bytes_atomic(path, data)
    return fingerprint


def load_fingerprint(root: str | Path) -> dict[str, Any] | None:
    """Read ``fingerprint.json`` of a dataset, if present and current.

    Args:
        root: Dataset folder.

    Returns:
        The fingerprint, or ``None`` when there is none or ``dataset.json`` changed since it was
        computed (a warning says so; rerun ``fingerprint``).

    Raises:
        InputDataError: The file exists but is not valid JSON or its hash does not match its content.
    """
    root = Path(root)
    path = root / FINGERPRINT_FILE
    if not path.is_file():
        return None
    try:
        fingerprint = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputDataError(f"{path}: not valid JSON: {e}; rerun 'medxlate fingerprint'") from e
    if not isinstance(fingerprint, dict) or fingerprint.get("fingerprint_hash") != fingerprint_hash(fingerprint):
        raise InputDataError(
            f"{path}: content does not match its fingerprint_hash (edited?); rerun 'medxlate fingerprint'"
        )
    index = root / DATASET_FILE
    if not index.is_file() or fingerprint.get("dataset_index_sha256") != _index_sha256(root):
        logger.warning("%s describes an older dataset.json; ignored (rerun 'medxlate fingerprint')", path)
        return None
    return fingerprint
