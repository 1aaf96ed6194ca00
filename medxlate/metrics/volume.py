"""Per-volume scores: 3D SSIM/PSNR/MAE of one volume, whole image and inside the body mask.

Shared by training validation, :func:`medxlate.evaluation.evaluate` and the X-ray -> CT case scorer
(:func:`medxlate.inference.lift.evaluate_lift_case`), so a model is scored the same way everywhere.
"""

from __future__ import annotations

import torch

from medxlate.metrics.pixelwise import mae, psnr
from medxlate.metrics.structural import ssim

__all__ = ["METRIC_NAMES", "SSIM_WINDOW", "volume_metrics"]

METRIC_NAMES = ("ssim", "psnr", "mae", "ssim_body", "psnr_body", "mae_body")
SSIM_WINDOW = 11  # Gaussian window of sigma 1.5 truncated at 3.5 sigma: 2 * 5 + 1 voxels


def volume_metrics(
    prediction: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, data_range: float | None = None
) -> dict[str, float]:
    """3D SSIM/PSNR/MAE of one volume, whole image and inside the body mask.

    ``data_range`` is the reference volume's max - min (stated, per case) unless given.

    Args:
        prediction: (X, Y, Z) in target units.
        reference: (X, Y, Z) in target units.
        mask: (X, Y, Z) boolean body mask.
        data_range: Fixed data range for PSNR/SSIM (a CT target: the window width in HU).

    Returns:
        ``ssim, psnr, mae, ssim_body, psnr_body, mae_body`` and ``data_range``.
    """
    pred, ref, body = prediction[None, None], reference[None, None], mask[None, None]
    data_range = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    values = {
        "psnr": psnr(pred, ref, data_range=data_range, spatial_dims=3),
        "mae": mae(pred, ref, spatial_dims=3),
        "psnr_body": psnr(pred, ref, data_range=data_range, mask=body, spatial_dims=3),
        "mae_body": mae(pred, ref, mask=body, spatial_dims=3),
    }
    scalars = {name: float(value[0]) for name, value in values.items()}
    scalars["ssim"], scalars["ssim_body"] = _ssim_pair(pred, ref, body, data_range)
    result = {name: scalars[name] for name in METRIC_NAMES}
    result["data_range"] = data_range
    return result


def _ssim_pair(pred: torch.Tensor, ref: torch.Tensor, body: torch.Tensor, data_range: float) -> tuple[float, float]:
    """3D SSIM (whole, body); volumes thinner than the 11-voxel window fall back to the mean of 2D
    SSIM over axial slices (slices whose body mask is empty inside the valid region are skipped)."""
    if min(pred.shape[2:]) >= SSIM_WINDOW:
        whole = ssim(pred, ref, data_range=data_range, spatial_dims=3)
        masked = ssim(pred, ref, data_range=data_range, mask=body, spatial_dims=3)
        return float(whole[0]), float(masked[0])
    slices = [t[0].permute(3, 0, 1, 2) for t in (pred, ref, body)]  # (Z, 1, X, Y)
    whole = ssim(slices[0], slices[1], data_range=data_range, spatial_dims=2)
    masked = ssim(slices[0], slices[1], data_range=data_range, mask=slices[2], spatial_dims=2)
    return float(whole.mean()), float(torch.nanmean(masked))
