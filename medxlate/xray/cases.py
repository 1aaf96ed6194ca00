"""One CT as an X-ray -> CT case: the CT (and body mask) on the model grid and its clean views.

Training (with augmentation), validation, ``medxlate evaluate`` and the DRR-rendering stage all make
cases the same way, so a model is scored on exactly the views it was trained to read:

* :func:`grid_mask`: a body mask resampled (nearest neighbour) onto the model grid of
  :func:`medxlate.xray.drr_data.to_model_grid`;
* :func:`render_views`: DRRs of CT volumes in HU on the model grid, in the model's view units [-1, 1];
* :func:`reprojection_agreement`: how well DRRs of a predicted CT match the input views (MAE in
  display units [0, 1] and 2D SSIM), the self-consistency check available even without a real CT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from monai.data import MetaTensor

from medxlate.xray.consistency import views_from_hu
from medxlate.xray.drr_data import to_model_grid
from medxlate.xray.geometry import Geometry

__all__ = ["LiftCase", "grid_mask", "make_case", "render_views", "reprojection_agreement"]


@dataclass(frozen=True)
class LiftCase:
    """A CT on the model grid with its views.

    Attributes:
        ct_hu: ``(1, S, S, S)`` CT in HU on the model grid (a MetaTensor with the grid's affine,
            centred on the CT's centre).
        mask: ``(1, S, S, S)`` boolean body mask on the same grid (all true when the case has none).
        views: ``(V, S, S)`` clean DRRs in the model's view units ``[-1, 1]``.
        record: the grid record of :func:`~medxlate.xray.drr_data.to_model_grid` (spacing, field, coverage).
    """

    ct_hu: MetaTensor
    mask: torch.Tensor
    views: torch.Tensor
    record: dict[str, Any]


def grid_mask(mask: MetaTensor, grid: MetaTensor) -> torch.Tensor:
    """Resample a mask (any grid) onto ``grid``'s voxels with nearest neighbour; outside is background.

    Args:
        mask: ``(1, X, Y, Z)`` mask with its affine.
        grid: a ``(1, S, S, S)`` volume whose affine and shape define the target grid.

    Returns:
        ``(1, S, S, S)`` boolean tensor.
    """
    from monai.transforms import SpatialResample

    resample = SpatialResample(mode="nearest", padding_mode="zeros", align_corners=False, dtype=torch.float64)
    source = MetaTensor(mask.as_tensor().to(torch.float32), affine=torch.as_tensor(mask.affine, dtype=torch.float64))
    out = resample(source, dst_affine=torch.as_tensor(grid.affine, dtype=torch.float64), spatial_size=grid.shape[1:])
    return out.as_tensor() > 0.5


def render_views(hu: torch.Tensor, affine: torch.Tensor, geometries: Sequence[Geometry]) -> torch.Tensor:
    """DRRs of ``(B, 1, S, S, S)`` CT volumes in HU as the model's ``(B, V, S, S)`` views in ``[-1, 1]``.

    No gradient is tracked (training data); for a differentiable rendering use
    :func:`medxlate.xray.views_from_hu`.
    """
    with torch.no_grad():
        return views_from_hu(hu, affine, geometries)


def make_case(
    ct: MetaTensor,
    geometries: Sequence[Geometry],
    size: int,
    fov_mm: float,
    min_coverage: float,
    mask: MetaTensor | None = None,
) -> LiftCase:
    """Resample a CT (and its mask) onto the model grid and render its clean views.

    Args:
        ct: ``(1, X, Y, Z)`` CT in HU with its affine.
        geometries: the views (detector ``size`` x ``size``).
        size: voxels per side of the model grid.
        fov_mm: field of view per side.
        min_coverage: see :func:`~medxlate.xray.drr_data.to_model_grid`.
        mask: optional body mask on the CT's grid.

    Returns:
        The case.

    Raises:
        InputDataError: if the CT covers too little of the field.
    """
    grid, record = to_model_grid(ct, size, fov_mm, min_coverage)
    body = grid_mask(mask, grid) if mask is not None else torch.ones(grid.shape, dtype=torch.bool)
    affine = torch.as_tensor(grid.affine, dtype=torch.float64)
    views = render_views(grid.as_tensor()[None], affine, geometries)[0]
    return LiftCase(ct_hu=grid, mask=body, views=views, record=record)


def reprojection_agreement(
    predicted_hu: torch.Tensor, views: torch.Tensor, affine: torch.Tensor, geometries: Sequence[Geometry]
) -> dict[str, float]:
    """DRRs of a predicted CT against the views it was predicted from.

    Args:
        predicted_hu: ``(1, S, S, S)`` predicted CT in HU on the model grid.
        views: ``(V, S, S)`` the input views in ``[-1, 1]``.
        affine: the grid's affine.
        geometries: the views' geometries.

    Returns:
        ``reprojection_mae`` (mean absolute difference in display units, ``[0, 1]``, over all views)
        and ``reprojection_ssim`` (2D SSIM in display units, data range 1, mean over views).
    """
    from medxlate import metrics

    rendered = render_views(predicted_hu[None].float(), affine, geometries)[0]  # (V, S, S)
    shown, given = (rendered + 1) / 2, (views.float() + 1) / 2
    ssim = metrics.ssim(shown[:, None], given[:, None], data_range=1.0, spatial_dims=2)
    return {
        "reprojection_mae": float((shown - given).abs().mean()),
        "reprojection_ssim": float(ssim.mean()),
    }
