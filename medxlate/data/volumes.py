"""Load a dataset's paired volumes into the model's space (canonical grid, [-1, 1]) once, in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from monai.data import MetaTensor

from medxlate.data.dataset import Case
from medxlate.errors import InputDataError
from medxlate.io import load_volume
from medxlate.transforms import Preprocessing, to_canonical


@dataclass(frozen=True)
class PairedVolume:
    """One case ready for training/validation, on the canonical grid (not padded).

    Attributes:
        case_id: Opaque case identifier.
        source: (1, X, Y, Z) source in [-1, 1].
        target: (1, X, Y, Z) target in [-1, 1] (per-volume percentile scaling).
        mask: (1, X, Y, Z) boolean body mask (all true when the dataset has none).
        target_range: The target's own (low, high) percentile values, in target units.
    """

    case_id: str
    source: MetaTensor
    target: MetaTensor
    mask: torch.Tensor
    target_range: tuple[float, float]


def load_paired_volume(case: Case, prep: Preprocessing) -> PairedVolume:
    """Load one case, check source/target/mask agree in geometry, and normalise.

    Raises:
        InputDataError: if shapes or affines of the case's images differ.
    """
    source = load_volume(case.source)
    target = load_volume(case.target)
    _check_same_grid(case, "target", source, target)
    source_unit = prep.source_to_model(source)
    if case.mask is not None:
        mask_raw = load_volume(case.mask)
        _check_same_grid(case, "mask", source, mask_raw)
        mask = to_canonical(mask_raw, prep.pixdim, mode="nearest").as_tensor() > 0.5
    else:
        mask = torch.ones((1, *source_unit.shape[1:]), dtype=torch.bool)
    target_unit, target_range = prep.target_to_model(target)
    return PairedVolume(
        case_id=case.id,
        source=source_unit,
        target=target_unit,
        mask=mask,
        target_range=target_range,
    )


def load_paired_volumes(cases: Sequence[Case], prep: Preprocessing) -> list[PairedVolume]:
    """Load several cases (see :func:`load_paired_volume`)."""
    return [load_paired_volume(case, prep) for case in cases]


def _check_same_grid(case: Case, role: str, source: MetaTensor, other: MetaTensor) -> None:
    path = case.files[role]
    if tuple(other.shape[1:]) != tuple(source.shape[1:]):
        raise InputDataError(
            f"case '{case.id}': {role} {path.name} has shape {tuple(other.shape[1:])}, expected the source's "
            f"{tuple(source.shape[1:])} (resample it onto the source grid in 'prepare')"
        )
    if not torch.allclose(torch.as_tensor(other.affine), torch.as_tensor(source.affine), atol=1e-3):
        raise InputDataError(
            f"case '{case.id}': {role} {path.name} has a different affine from the source "
            f"(source\n{source.affine}\n{role}\n{other.affine}); expected identical voxel grids"
        )
