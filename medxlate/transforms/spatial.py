"""Spatial preprocessing: bring a volume to the model's canonical grid and back onto its own.

The model sees volumes in RAS orientation (MONAI's convention), optionally resampled to a fixed
spacing. :func:`restore_grid` undoes both so that a translated volume lies exactly on the input's
voxel grid with the input's affine, which is what makes it overlay its source in a viewer.
"""

from __future__ import annotations

from collections.abc import Sequence

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, ResampleToMatch, Spacing

from medxlate.errors import GeometryError

RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def axcodes(affine: torch.Tensor | np.ndarray) -> str:
    """Orientation codes of a 4x4 voxel-to-RAS affine, e.g. ``"LAS"``."""
    matrix = affine.detach().cpu().numpy() if isinstance(affine, torch.Tensor) else np.asarray(affine)
    return "".join(nib.orientations.aff2axcodes(matrix))


def to_canonical(
    image: MetaTensor,
    pixdim: Sequence[float] | None = None,
    mode: str = "bilinear",
) -> MetaTensor:
    """Reorient ``image`` (C, X, Y, Z) to RAS and, if ``pixdim`` is given, resample to that spacing.

    Args:
        image: Volume with a voxel-to-RAS ``affine``.
        pixdim: Target spacing in mm, or ``None`` to keep the spacing.
        mode: Interpolation for resampling (``"bilinear"`` for intensities, ``"nearest"`` for masks).

    Returns:
        A new MetaTensor in RAS orientation.
    """
    oriented = Orientation(axcodes="RAS", labels=RAS_LABELS)(image)
    if pixdim is None:
        return oriented
    return Spacing(pixdim=tuple(pixdim), mode=mode, padding_mode="border")(oriented)


def restore_grid(
    output: MetaTensor,
    reference: MetaTensor,
    resampled: bool,
    mode: str = "bilinear",
) -> MetaTensor:
    """Put a result computed on the canonical grid back onto ``reference``'s grid.

    Args:
        output: Volume (C, X, Y, Z) on the canonical grid produced by :func:`to_canonical`.
        reference: The original input volume; its shape and affine define the result's grid.
        resampled: Whether :func:`to_canonical` resampled (then interpolation is needed).
        mode: Interpolation used when ``resampled``.

    Returns:
        A MetaTensor with ``reference``'s spatial shape and exactly its affine.

    Raises:
        GeometryError: if the result does not land on the reference grid.
    """
    if resampled:
        canonical_reference = Orientation(axcodes="RAS", labels=RAS_LABELS)(reference)
        output = ResampleToMatch(mode=mode, padding_mode="border")(output, img_dst=canonical_reference)
    restored = Orientation(axcodes=axcodes(reference.affine), labels=RAS_LABELS)(output)
    if tuple(restored.shape[1:]) != tuple(reference.shape[1:]):
        raise GeometryError(
            f"restored shape {tuple(restored.shape[1:])} differs from the input's {tuple(reference.shape[1:])}"
        )
    ref_affine = torch.as_tensor(reference.affine, dtype=torch.float64)
    if not torch.allclose(torch.as_tensor(restored.affine, dtype=torch.float64), ref_affine, atol=1e-4):
        raise GeometryError(f"restored affine\n{restored.affine}\ndiffers from the input's\n{reference.affine}")
    meta = {k: v for k, v in reference.meta.items() if k != "affine"}
    return MetaTensor(restored.as_tensor(), affine=ref_affine.clone(), meta=meta)
