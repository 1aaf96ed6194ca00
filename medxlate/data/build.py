"""Turn one case's loaded input volumes into the volumes a dataset stores.

Steps: CT padding clipped (``ct_clip_min_hu``); every role checked against the source grid
(resampled onto it when allowed: images linear, masks nearest); the target aligned to the source
(:mod:`medxlate.data.registration`, the Mattes metric recorded either way); a body mask from the CT
unless the input brings one, restricted to the target's field of view; NaN/inf and empty masks
refused. Nothing here touches disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from medxlate.config.prepare import PrepareConfig
from medxlate.data.bodymask import body_mask_from_ct
from medxlate.data.registration import align, resample_onto, same_grid
from medxlate.errors import GeometryError, InputDataError

__all__ = ["BuiltCase", "CaseInput", "build_case", "is_label_role"]

_INT16 = np.iinfo(np.int16)


def _keep(text: str) -> str:
    return text


@dataclass(frozen=True)
class CaseInput:
    """One case to prepare, before anything is loaded.

    Attributes:
        label: How messages name the case (``"case #1"``, ``"patient P002"``); no identifiers.
        group: Patient key for splits (in memory only, may be identifying; never written).
        input_key: Content hash of the input files (see :func:`~medxlate.data.casestore.hash_files`).
        names: Role -> how messages name that input (a manifest path, or "CT series 'desc'").
        modalities: Role -> modality (``CT``, ``MR``) for the roles whose modality is known.
        load: Loads role -> volume (``MetaTensor`` (1, X, Y, Z), physical units, RAS affine).
        id_map: Columns for the id map (identifiers allowed: it is written outside the dataset).
        split: Split given by the input, else ``None`` (assigned by config).
        allow_resample: Whether roles on another grid may be resampled onto the source grid.
        redact: Applied to every message about this case (removes identifiers and input paths).
    """

    label: str
    group: str
    input_key: str
    names: dict[str, str]
    modalities: dict[str, str]
    load: Callable[[], dict[str, MetaTensor]]
    id_map: dict[str, object] = field(default_factory=dict)
    split: str | None = None
    allow_resample: bool = True
    redact: Callable[[str], str] = _keep


@dataclass(frozen=True)
class BuiltCase:
    """Volumes to store (role -> (volume on the source grid, dtype)) and facts to record."""

    volumes: dict[str, tuple[MetaTensor, np.dtype]]
    record: dict[str, Any]


def is_label_role(role: str) -> bool:
    """Masks and label maps are resampled with nearest neighbour and stored as integers."""
    return "mask" in role or "label" in role


def _clip_ct(volume: MetaTensor, modality: str | None, low: float | None) -> MetaTensor:
    if modality != "CT" or low is None:
        return volume
    return volume.clamp(min=low)


def _check_grid(case: CaseInput, role: str, source: MetaTensor, other: MetaTensor) -> None:
    """Raise the mismatch (shape first, then affine) when resampling is not allowed."""
    if case.allow_resample or same_grid(source, other):
        return
    names, src_shape, shape = case.names, tuple(source.shape[1:]), tuple(other.shape[1:])
    if shape != src_shape:
        raise GeometryError(
            f"{names[role]}: {role} has shape {shape}, expected the source's {src_shape} ({names['source']})"
        )
    raise GeometryError(
        f"{names[role]}: {role} affine differs from the source's ({names['source']}); expected the same grid "
        "(set grid_mismatch: resample to resample it onto the source grid)"
    )


def _finite(case: CaseInput, role: str, volume: torch.Tensor) -> None:
    bad = int((~torch.isfinite(volume)).sum())
    if bad:
        raise InputDataError(f"{case.names[role]}: {role} has {bad} NaN/inf voxels; expected finite values")


def _storage_dtype(volume: torch.Tensor, role: str, modality: str | None) -> np.dtype:
    if is_label_role(role):
        return np.dtype(np.uint8)
    if modality == "CT" and bool(torch.equal(volume, volume.round())):
        low, high = float(volume.min()), float(volume.max())
        if _INT16.min <= low and high <= _INT16.max:
            return np.dtype(np.int16)
    return np.dtype(np.float32)


def _body_mask(case: CaseInput, cfg: PrepareConfig, out: dict[str, MetaTensor]) -> torch.Tensor:
    ct_role = next((role for role in ("source", "target") if case.modalities.get(role) == "CT"), None)
    if ct_role is None:
        raise InputDataError(
            f"{case.label}: no mask given and neither source nor target is CT "
            f"(modalities {case.modalities}); expected a CT to compute the body mask from, or a 'mask' file"
        )
    mask = body_mask_from_ct(out[ct_role][0].numpy(), threshold=cfg.mask.threshold_hu)
    return torch.from_numpy(mask)[None]


def _onto_source(
    case: CaseInput, cfg: PrepareConfig, source: MetaTensor, volumes: dict[str, MetaTensor], transform: Any
) -> dict[str, MetaTensor]:
    """Every role on the source grid: masks by nearest neighbour, images linearly through ``transform``."""
    moved = cfg.registration.method != "none"
    out: dict[str, MetaTensor] = {"source": source}
    for role, volume in volumes.items():
        if role == "source":
            continue
        on_grid = same_grid(source, volume)
        if is_label_role(role):  # masks belong to the source: no registration transform
            out[role] = volume if on_grid else resample_onto(source, volume, label=True)
            continue
        modality = case.modalities.get(role, case.modalities.get("target"))
        clipped = _clip_ct(volume, modality, cfg.ct_clip_min_hu)
        if on_grid and not moved:
            out[role] = clipped
        else:
            fill = (cfg.ct_clip_min_hu or -1024.0) if modality == "CT" else 0.0
            out[role] = resample_onto(source, clipped, transform, default=fill)
    return out


def _final_mask(
    case: CaseInput, cfg: PrepareConfig, out: dict[str, MetaTensor], target: MetaTensor, transform: Any
) -> MetaTensor:
    """The given or computed body mask, restricted to the target's field of view, as uint8."""
    source = out["source"]
    mask = (out["mask"].as_tensor() > 0.5) if "mask" in out else _body_mask(case, cfg, out)
    if cfg.mask.restrict_to_target_fov and (cfg.registration.method != "none" or not same_grid(source, target)):
        ones = MetaTensor(torch.ones_like(target.as_tensor()), affine=target.affine)
        mask &= resample_onto(source, ones, transform, label=True).as_tensor() > 0.5
    if not bool(mask.any()):
        raise InputDataError(
            f"{case.label}: the body mask is empty (no CT voxel above {cfg.mask.threshold_hu} HU inside the "
            "target's field of view); expected a body in both images"
        )
    return MetaTensor(mask.to(torch.uint8), affine=source.affine)


def build_case(case: CaseInput, cfg: PrepareConfig) -> BuiltCase:
    """Load one case and bring every role onto the source grid (see the module docstring).

    Args:
        case: The case to build.
        cfg: Prepare settings.

    Returns:
        Volumes to store and the record (``registration``: metric value, transform summary).

    Raises:
        InputDataError: Missing role, NaN/inf voxels, an empty body mask, or no CT for the mask.
        GeometryError: A role on another grid when resampling is not allowed; failed registration.
    """
    volumes = case.load()
    if "source" not in volumes or "target" not in volumes:
        raise InputDataError(f"{case.label}: needs a source and a target, got roles {sorted(volumes)}")
    source = _clip_ct(volumes["source"], case.modalities.get("source"), cfg.ct_clip_min_hu)
    for role, volume in volumes.items():
        _check_grid(case, role, source, volume)
        _finite(case, role, volume)
    target = _clip_ct(volumes["target"], case.modalities.get("target"), cfg.ct_clip_min_hu)
    alignment = align(source, target, cfg.registration)
    out = _onto_source(case, cfg, source, volumes, alignment.transform)
    out["mask"] = _final_mask(case, cfg, out, target, alignment.transform)
    stored = {
        role: (volume, _storage_dtype(volume.as_tensor(), role, case.modalities.get(role)))
        for role, volume in out.items()
    }
    return BuiltCase(volumes=stored, record={"registration": alignment.record})
