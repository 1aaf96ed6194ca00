"""Multi-scale structural similarity (MS-SSIM, Wang, Simoncelli and Bovik 2003), 2D or 3D, in torch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medxlate.errors import InputDataError
from medxlate.metrics._inputs import as_data_range, as_mask, check_pair, masked_sample_mean
from medxlate.metrics.filtering import gaussian_kernel1d
from medxlate.metrics.structural import ssim_terms

#: Per-scale exponents of Wang et al. 2003 (Eq. 7 and section 3.2), finest scale first.
WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float | torch.Tensor,
    mask: torch.Tensor | None = None,
    spatial_dims: int | None = None,
    weights: Sequence[float] = WANG_WEIGHTS,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Multi-scale SSIM per sample: ``prod_j max(cs_j, 0)^w_j`` with luminance at the coarsest scale.

    Scale ``j`` uses the same Gaussian-window SSIM terms as :func:`medxlate.metrics.ssim` (population
    covariance, valid region only, i.e. an ``r``-voxel border strip ignored): at every scale but the
    last the mean contrast-structure term ``cs_j``, at the last the mean full SSIM. Between scales
    both images are averaged over 2x2(x2) blocks (a trailing odd voxel is dropped). This is the
    definition of Wang et al. 2003 as implemented by e.g. ``pytorch_msssim``. For the SynthRAD
    challenge's variant use :func:`medxlate.metrics.synthrad2025`.

    Args:
        pred: ``(B, C, *spatial)`` with 2 or 3 spatial dims (or one image ``(C, *spatial)``, laid
            out as for :func:`medxlate.metrics.ssim`); every spatial size at least
            ``(2r + 1) * 2^(len(weights) - 1)`` (176 voxels for the defaults).
        target: Reference, same shape and device as ``pred``.
        data_range: Dynamic range of the data (a positive number or a ``(B,)`` tensor).
        mask: Optional boolean / 0-1 tensor ``(B or 1, 1 or C, *spatial)``. Each scale's terms are
            averaged over mask voxels inside the valid region; a coarse voxel is inside only if all
            the fine voxels it averages are.
        spatial_dims: 2 or 3: ``pred`` is ``(B, C, *spatial)`` or one image ``(C, *spatial)`` with
            that many spatial dims. Needed for plain 4-dim tensors (a 2D batch or one volume).
        weights: One exponent per scale, finest first (fewer scales allow smaller images).
        sigma: Standard deviation of the Gaussian window, in voxels.
        truncate: Window radius in standard deviations.
        k1: Luminance stability constant.
        k2: Contrast stability constant.

    Returns:
        ``(B,)`` MS-SSIM in the compute dtype (float64 for float64 input, else float32); NaN for a
        sample whose mask is empty at some scale.

    Raises:
        InputDataError: if shapes differ, an image is too small for the number of scales, the mask
            does not broadcast, or a parameter is out of range.
    """
    pair = check_pair("ms_ssim", pred, target, spatial_dims)
    x, y = pair.pred, pair.target
    crange = as_data_range("ms_ssim", data_range, x)
    bool_mask = as_mask("ms_ssim", mask, pair)
    if len(weights) < 1 or any(not w >= 0 for w in weights):
        raise InputDataError(f"ms_ssim: weights must be one or more non-negative numbers, got {tuple(weights)}")
    if not (sigma > 0 and truncate > 0 and k1 >= 0 and k2 >= 0):
        raise InputDataError(
            f"ms_ssim: expected sigma, truncate > 0 and k1, k2 >= 0, got {sigma}, {truncate}, {k1}, {k2}"
        )
    kernel = gaussian_kernel1d(sigma, truncate, dtype=x.dtype, device=x.device)
    radius = kernel.numel() // 2
    smallest = kernel.numel() * 2 ** (len(weights) - 1)
    if min(x.shape[2:]) < smallest:
        raise InputDataError(
            f"ms_ssim: every spatial size must be at least {smallest} for {len(weights)} scales and a "
            f"{kernel.numel()}-voxel window, got shape {tuple(x.shape)}; pass fewer weights"
        )
    c1, c2 = (k1 * crange) ** 2, (k2 * crange) ** 2
    spatial = tuple(range(2, x.ndim))
    pool = F.avg_pool2d if len(spatial) == 2 else F.avg_pool3d
    result = x.new_ones(x.shape[0])
    for scale, weight in enumerate(weights):
        luminance, contrast_structure = ssim_terms(x, y, kernel, c1, c2)
        last = scale == len(weights) - 1
        term = luminance * contrast_structure if last else contrast_structure
        valid = None
        if bool_mask is not None:
            valid = bool_mask
            for axis in spatial:
                valid = valid.narrow(axis, radius, valid.shape[axis] - 2 * radius)
        result = result * masked_sample_mean(term, valid).clamp(min=0) ** weight
        if not last:
            x, y = pool(x, kernel_size=2), pool(y, kernel_size=2)
            if bool_mask is not None:  # inside only where the whole block is: (pooled 0/1) == 1
                bool_mask = pool(bool_mask.to(x.dtype), kernel_size=2) == 1
    return pair.result(result)
