"""Check a prepared dataset and list every problem at once (``medxlate verify``).

Checks, per case and role: listed files exist and load; no NaN/inf; every role on the source's grid
(shape and affine); masks binary and not empty; label maps (a role naming ``label`` but not ``mask``,
e.g. ``labels``) non-negative integers; intensities plausible for the modality (CT: at most
1% of voxels outside [-1100, 4000] HU, some air below -900 HU and some soft tissue within
[-200, 200] HU; MR: no negative values); no constant image; ``case.json`` agrees with
``dataset.json`` (a disagreement means an interrupted prepare). Index-level problems (missing or
malformed ``dataset.json``, duplicate ids, unknown splits) come first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medxlate.data.build import is_label_role
from medxlate.data.casestore import CASE_FILE
from medxlate.data.dataset import DATASET_FILE, REQUIRED_ROLES, SPLITS
from medxlate.errors import MedxlateError

__all__ = ["CT_PLAUSIBLE_HU", "Problem", "verify_dataset"]

CT_PLAUSIBLE_HU = (-1100.0, 4000.0)
_CT_OUTSIDE_MAX = 0.01
_AIR_HU = -900.0
_SOFT_TISSUE_HU = (-200.0, 200.0)
_AFFINE_ATOL_MM = 1e-3


@dataclass(frozen=True)
class Problem:
    """One problem found in a dataset.

    Attributes:
        kind: ``index``, ``missing_file``, ``unreadable``, ``non_finite``, ``geometry``,
            ``empty_mask``, ``mask_values``, ``intensity`` or ``stale``.
        message: What was found and what was expected.
        case: Case id (``None`` for index-level problems).
        role: File role (``source``, ``target``, ``mask``...), if any.
    """

    kind: str
    message: str
    case: str | None = None
    role: str | None = None

    def __str__(self) -> str:
        where = "/".join(part for part in (self.case, self.role) if part)
        return f"{where}: {self.message}" if where else self.message


def _read_index(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    index = root / DATASET_FILE
    if not index.is_file():
        return None, [Problem("index", f"{index} not found (expected a folder written by 'medxlate prepare')")]
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, [Problem("index", f"{index} is not readable JSON: {e}")]
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list) or not cases:
        return None, [Problem("index", f"{index}: 'cases' is empty or missing (expected a list of cases)")]
    return data, []


def _index_problems(cases: list[Any]) -> list[Problem]:
    problems, seen = [], set()
    for position, entry in enumerate(cases):
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
            problems.append(Problem("index", f"cases[{position}]: expected an object with 'id', 'split' and 'files'"))
            continue
        case_id = str(entry.get("id", f"#{position}"))
        if case_id in seen:
            problems.append(Problem("index", f"case id listed more than once (cases[{position}])", case_id))
        seen.add(case_id)
        if entry.get("split") not in SPLITS:
            problems.append(
                Problem("index", f"split is {entry.get('split')!r}, expected one of {', '.join(SPLITS)}", case_id)
            )
        problems += [
            Problem("index", f"no '{role}' file listed", case_id, role)
            for role in REQUIRED_ROLES
            if role not in entry["files"]
        ]
    return problems


def _load(root: Path, case_id: str, role: str, rel: Any, problems: list[Problem]) -> Any:
    from medxlate.io import load_volume

    path = root / str(rel)
    if not path.is_file():
        problems.append(Problem("missing_file", f"{rel} does not exist", case_id, role))
        return None
    try:
        return load_volume(path, dtype=torch.float64)
    except Exception as e:  # any reader failure is a finding, not a crash of the check
        reason = str(e) if isinstance(e, MedxlateError) else f"{type(e).__name__}: {e}"
        problems.append(Problem("unreadable", f"{rel} cannot be read: {reason}", case_id, role))
        return None


def _geometry(case_id: str, role: str, source: Any, volume: Any) -> list[Problem]:
    if tuple(volume.shape) != tuple(source.shape):
        return [
            Problem(
                "geometry",
                f"shape {tuple(volume.shape[1:])} (channels {volume.shape[0]}) differs from the source's "
                f"{tuple(source.shape[1:])} (channels {source.shape[0]})",
                case_id,
                role,
            )
        ]
    difference = float((volume.affine.double() - source.affine.double()).abs().max())
    if difference > _AFFINE_ATOL_MM:
        return [Problem("geometry", f"affine differs from the source's by up to {difference:.4g} mm", case_id, role)]
    return []


def _mask_problems(case_id: str, role: str, values: np.ndarray) -> list[Problem]:
    problems = []
    if not np.isin(values, (0.0, 1.0)).all():
        found = np.unique(values[~np.isin(values, (0.0, 1.0))])[:5].tolist()
        problems.append(Problem("mask_values", f"values other than 0 and 1 (e.g. {found})", case_id, role))
    if not (values > 0).any():
        problems.append(Problem("empty_mask", "mask is empty (no voxel set)", case_id, role))
    return problems


def _label_problems(case_id: str, role: str, values: np.ndarray) -> list[Problem]:
    """A label map holds ids: non-negative integers (0 is unlabelled)."""
    bad = (values < 0) | (values != np.round(values))
    if not bad.any():
        return []
    found = np.unique(values[bad])[:5].tolist()
    return [Problem("label_values", f"values other than non-negative integers (e.g. {found})", case_id, role)]


def _ct_problems(values: np.ndarray) -> list[str]:
    low, high = CT_PLAUSIBLE_HU
    found = []
    outside = float(((values < low) | (values > high)).mean())
    if outside > _CT_OUTSIDE_MAX:
        found.append(
            f"{100 * outside:.1f}% of voxels outside [{low:g}, {high:g}] HU (range {values.min():g} to "
            f"{values.max():g}); expected HU (rescale applied, padding clipped)"
        )
    if not (values < _AIR_HU).any():
        found.append(f"no air (no voxel below {_AIR_HU:g} HU); expected a CT in HU with air around the body")
    if not ((values >= _SOFT_TISSUE_HU[0]) & (values <= _SOFT_TISSUE_HU[1])).any():
        found.append(f"no soft tissue (no voxel within {list(_SOFT_TISSUE_HU)} HU); expected a CT in HU")
    return found


def _intensity_problems(case_id: str, role: str, modality: str | None, values: np.ndarray) -> list[Problem]:
    found = []
    if values.size and values.min() == values.max():
        found.append(f"constant image (every voxel {values.min():g})")
    elif modality == "CT":
        found += _ct_problems(values)
    elif modality == "MR" and (values < 0).any():
        found.append(f"{int((values < 0).sum())} negative voxels (min {values.min():g}); expected MR magnitudes >= 0")
    return [Problem("intensity", f"{modality or 'image'}: {text}", case_id, role) for text in found]


def _role_modality(role: str, data: dict[str, Any]) -> str | None:
    for prefix in ("source", "target"):
        if role.startswith(prefix):
            value = data.get(f"{prefix}_modality")
            return str(value).upper() if value else None
    return None


def _stale(root: Path, case_id: str, entry: dict[str, Any]) -> list[Problem]:
    case_file = root / "cases" / case_id / CASE_FILE
    if "fingerprint" not in entry or not case_file.is_file():
        return []
    try:
        stored = json.loads(case_file.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return [Problem("unreadable", f"cases/{case_id}/{CASE_FILE} is not readable JSON", case_id)]
    if stored != entry["fingerprint"]:
        return [
            Problem("stale", "case folder and dataset.json disagree (interrupted prepare?); rerun prepare", case_id)
        ]
    return []


def _case_problems(root: Path, data: dict[str, Any], entry: dict[str, Any], position: int) -> list[Problem]:
    case_id = str(entry.get("id", f"#{position}"))
    problems: list[Problem] = _stale(root, case_id, entry)
    volumes = {role: _load(root, case_id, role, rel, problems) for role, rel in entry["files"].items()}
    source = volumes.get("source")
    for role, volume in volumes.items():
        if volume is None:
            continue
        values = volume.as_tensor().numpy()
        bad = int((~np.isfinite(values)).sum())
        if bad:
            problems.append(Problem("non_finite", f"{bad} NaN/inf voxels", case_id, role))
            values = values[np.isfinite(values)]
        if source is not None and role != "source":
            problems += _geometry(case_id, role, source, volume)
        if is_label_role(role) and "mask" not in role:
            problems += _label_problems(case_id, role, values)
        elif is_label_role(role):
            problems += _mask_problems(case_id, role, values)
        else:
            problems += _intensity_problems(case_id, role, _role_modality(role, data), values)
    return problems


def verify_dataset(root: str | Path) -> list[Problem]:
    """List every problem of a prepared dataset (empty list: the dataset is fine).

    Args:
        root: Dataset folder (holding ``dataset.json``).

    Returns:
        All problems found, index-level first, then per case in index order. Never raises for
        problems in the data; each is a :class:`Problem`.
    """
    root = Path(root)
    data, problems = _read_index(root)
    if data is None:
        return problems
    problems += _index_problems(data["cases"])
    for position, entry in enumerate(data["cases"]):
        if isinstance(entry, dict) and isinstance(entry.get("files"), dict):
            problems += _case_problems(root, data, entry, position)
    return problems
