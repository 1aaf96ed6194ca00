"""The SynthRAD2025 challenge's image metrics (MAE, PSNR, masked MS-SSIM), carried over exactly.

Reference: ``image_metrics.py`` of https://github.com/SynthRAD2025/evaluation at commit 17cac47
(MIT licence), ``ImageMetrics.score_patient``. Every definition below is that file's, re-written in
torch (CPU or GPU, float64):

* masking: outside the mask both volumes are set to -1024 HU first (``mask > 0`` is inside);
* MAE: mean ``|gt - pred|`` over mask voxels, **not** clipped;
* PSNR: both clipped to the fixed range [-1024, 3071] HU, MSE over mask voxels,
  ``10 log10(4095² / MSE)``;
* MS-SSIM: both clipped to [-1024, 3071], set to -1024 outside the mask, shifted by +1024; every axis
  shorter than 97 voxels is edge-padded (mask too) to 97, split ``(97 - n) // 2`` before and the rest
  after; then 5 levels with weights ``w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``. At each level
  an SSIM map is built from 7-voxel uniform (box) local moments with the sample covariance
  (factor ``343 / 342``), ``C1 = (0.01 * 4095)²``, ``C2 = (0.03 * 4095)²``, ``C3 = C2 / 2`` and
  ``L = max(0, (2 ux uy + C1) / (ux² + uy² + C1))``,
  ``C = max(0, (2 sx sy + C2) / (vx + vy + C2))``, ``S = max(0, (vxy + C3) / (sx sy + C3))`` with
  ``s = sqrt(max(v, 0))``; the map is ``L^w C^w S^w`` (the reference's luminance weights end up
  equal to the scale weights, so luminance is weighted at *every* level). The level's value is the
  mean of the map inside the mask after cropping 3 voxels from every border; it is clipped to
  [0, 1] and the 5 values are multiplied. Between levels the images are averaged over 2x2x2 blocks
  ``[2j - 1, 2j]`` with zeros before the first voxel (``fftconvolve(..., mode='same')`` followed by
  ``[::2]``), and the mask keeps every other voxel (``mask[::2, ::2, ::2]``).

The reference computes in the input's dtype (float32 images give float32 local moments, whose
``E[x²] - E[x]²`` loses digits); we compute in float64, i.e. the definition evaluated exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medxlate.errors import GeometryError, InputDataError

#: Fixed population intensity range of the challenge, in HU.
HU_RANGE = (-1024.0, 3071.0)
#: Per-level weights (Wang et al. 2003, Eq. 7), used for contrast, structure and luminance.
LEVEL_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: Every axis is edge-padded to at least this many voxels before the 5 levels.
MIN_SIZE = 97
#: Width of the uniform SSIM window, and the strip cropped from each border of a level's map.
WINDOW = 7
#: A CT reference must contain air (some voxel at or below this HU value) ...
AIR_HU = -500.0
#: ... and lie inside this plausible HU range (int16 DICOM limits, padding values included).
PLAUSIBLE_HU = (-4096.0, 32767.0)


def synthrad2025(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """Score one synthetic CT exactly as the SynthRAD2025 final evaluation does.

    Args:
        pred: Synthetic CT in HU, ``(X, Y, Z)`` or ``(1, X, Y, Z)``; any real dtype, CPU or GPU.
        target: Real CT in HU on the same grid (same shape).
        mask: Body mask on the same grid; a voxel is inside where ``mask > 0``. ``None`` means the
            whole volume.

    Returns:
        ``{"mae": HU, "psnr": dB, "ms_ssim": masked MS-SSIM}`` as Python floats (``psnr`` is
        ``inf`` only when the clipped volumes agree exactly inside the mask).

    Raises:
        GeometryError: if the shapes differ or are not 3D.
        InputDataError: if the mask is empty or has negative values, a volume holds NaN/inf, or
            the reference does not look like a CT in HU (no air at or below -500 HU, or values
            outside [-4096, 32767]).
    """
    gt, pr, inside = _checked_volumes(pred, target, mask)
    low = HU_RANGE[0]
    gt = torch.where(inside, gt, gt.new_tensor(low))
    pr = torch.where(inside, pr, pr.new_tensor(low))
    count = inside.sum()
    mae = (gt - pr).abs().sum() / count  # zero outside the mask: both are -1024 there
    gt_c, pr_c = gt.clamp(*HU_RANGE), pr.clamp(*HU_RANGE)
    mse = torch.where(inside, (gt_c - pr_c) ** 2, gt.new_zeros(())).sum() / count
    data_range = HU_RANGE[1] - HU_RANGE[0]
    psnr = 10 * torch.log10(data_range**2 / mse)
    ms_ssim = _masked_ms_ssim(gt_c - low, pr_c - low, inside, data_range)  # outside already -1024
    return {"mae": float(mae), "psnr": float(psnr), "ms_ssim": float(ms_ssim)}


def _checked_volumes(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate the inputs; return float64 ``(X, Y, Z)`` pred, target and boolean mask."""
    volumes = {"pred": pred, "target": target} | ({} if mask is None else {"mask": mask})
    shaped: dict[str, torch.Tensor] = {}
    for name, value in volumes.items():
        if not isinstance(value, torch.Tensor):
            raise InputDataError(f"synthrad2025: {name} must be a torch.Tensor, got {type(value).__name__}")
        if value.is_complex():
            raise InputDataError(f"synthrad2025: {name} must be real-valued, got dtype {value.dtype}")
        if value.ndim == 4 and value.shape[0] == 1:
            value = value[0]
        if value.ndim != 3:
            raise GeometryError(
                f"synthrad2025: {name} must be a volume (X, Y, Z) or (1, X, Y, Z), got shape {tuple(value.shape)}"
            )
        shaped[name] = value
    for name, value in shaped.items():
        if value.shape != shaped["target"].shape:
            raise GeometryError(
                f"synthrad2025: {name} and target must be on the same grid, got {name} "
                f"{tuple(value.shape)} and target {tuple(shaped['target'].shape)}; resample first"
            )
    device = shaped["target"].device
    gt = shaped["target"].to(device, torch.float64)
    pr = shaped["pred"].to(device, torch.float64)
    for name, value in (("pred", pr), ("target", gt)):
        if not bool(torch.isfinite(value).all()):
            raise InputDataError(f"synthrad2025: {name} contains NaN or infinite values")
    low, high = float(gt.min()), float(gt.max())
    if low > AIR_HU or low < PLAUSIBLE_HU[0] or high > PLAUSIBLE_HU[1]:
        raise InputDataError(
            f"synthrad2025: target does not look like a CT in HU (values {low:.4g} .. {high:.4g}); expected "
            f"values within [{PLAUSIBLE_HU[0]:g}, {PLAUSIBLE_HU[1]:g}] including air (<= {AIR_HU:g} HU). "
            "The SynthRAD protocol scores synthetic CT against a real CT"
        )
    if mask is None:
        return pr, gt, torch.ones_like(gt, dtype=torch.bool)
    raw = shaped["mask"].to(device)
    if raw.dtype != torch.bool and bool((raw < 0).any()):
        raise InputDataError("synthrad2025: mask has negative values; expected 0 (outside) and positive (inside)")
    inside = raw > 0
    if not bool(inside.any()):
        raise InputDataError("synthrad2025: mask is empty; expected at least one voxel > 0")
    return pr, gt, inside


def _masked_ms_ssim(gt: torch.Tensor, pr: torch.Tensor, inside: torch.Tensor, data_range: float) -> torch.Tensor:
    """Product over the 5 levels of the clipped masked mean SSIM map (see the module docstring)."""
    pads = []
    for size in reversed(gt.shape):  # F.pad lists the last axis first
        before = max((MIN_SIZE - size) // 2, 0)
        pads += [before, max(MIN_SIZE - size - before, 0)]
    # (1, 1, X, Y, Z): replicate padding needs batch and channel axes
    gt = F.pad(gt[None, None], pads, mode="replicate")
    pr = F.pad(pr[None, None], pads, mode="replicate")
    keep = F.pad(inside[None, None].to(gt.dtype), pads, mode="replicate") > 0
    crop = (WINDOW - 1) // 2
    result = gt.new_ones(())
    for level, weight in enumerate(LEVEL_WEIGHTS):
        ssim_map = _weighted_ssim_map(gt, pr, weight, data_range)  # (1, 1, *spatial - 2 * crop)
        core = keep[..., crop:-crop, crop:-crop, crop:-crop]
        if not bool(core.any()):  # the reference would return NaN here
            raise InputDataError(
                f"synthrad2025: the mask has no voxel {crop} or more voxels from the border at MS-SSIM level "
                f"{level + 1} (grid {tuple(keep.shape[2:])}); expected a body mask, not a few border voxels"
            )
        level_value = ssim_map[core].mean()
        result = result * level_value.clamp(0, 1)
        if level < len(LEVEL_WEIGHTS) - 1:
            gt, pr = _half(gt), _half(pr)
            keep = keep[..., ::2, ::2, ::2]
    return result


def _weighted_ssim_map(x: torch.Tensor, y: torch.Tensor, weight: float, data_range: float) -> torch.Tensor:
    """``L^w C^w S^w`` on the region where the 7-voxel box window lies inside the image."""
    n_points = WINDOW**3
    cov_norm = n_points / (n_points - 1)  # sample covariance
    ux, uy = _box_mean(x), _box_mean(y)
    vx = cov_norm * (_box_mean(x * x) - ux * ux)
    vy = cov_norm * (_box_mean(y * y) - uy * uy)
    vxy = cov_norm * (_box_mean(x * y) - ux * uy)
    sx, sy = vx.clamp(min=0).sqrt(), vy.clamp(min=0).sqrt()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    c3 = c2 / 2
    luminance = ((2 * ux * uy + c1) / (ux * ux + uy * uy + c1)).clamp(min=0)
    contrast = ((2 * sx * sy + c2) / (vx + vy + c2)).clamp(min=0)
    structure = ((vxy + c3) / (sx * sy + c3)).clamp(min=0)
    return (luminance * contrast * structure) ** weight


def _box_mean(volume: torch.Tensor) -> torch.Tensor:
    """Mean over every ``WINDOW``-wide box that lies inside the volume (valid region), per spatial axis.

    Running sums (``cumsum``) make it 2 passes per axis on CPU and GPU alike; in float64 their
    rounding (~1e-16 of the partial sums) stays far below what SSIM can resolve.
    """
    for axis in range(2, volume.ndim):
        sums = F.pad(volume.movedim(axis, -1), (1, 0)).cumsum(dim=-1)
        volume = ((sums[..., WINDOW:] - sums[..., :-WINDOW]) / WINDOW).movedim(-1, axis)
    return volume


def _half(volume: torch.Tensor) -> torch.Tensor:
    """Mean over blocks ``[2j - 1, 2j]`` per axis, zero before the first voxel: ``ceil(n / 2)`` outputs."""
    return F.avg_pool3d(F.pad(volume, (1, 0, 1, 0, 1, 0)), kernel_size=2, stride=2)
