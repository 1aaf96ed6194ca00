"""Structural similarity (SSIM), reproducing scikit-image's Gaussian-weighted SSIM in torch."""

from __future__ import annotations

import torch

from medxlate.errors import InputDataError
from medxlate.metrics._inputs import as_data_range, as_mask, check_pair, masked_sample_mean
from medxlate.metrics.filtering import filter_valid, gaussian_kernel1d


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float | torch.Tensor,
    mask: torch.Tensor | None = None,
    spatial_dims: int | None = None,
    sigma: float = 1.5,
    truncate: float = 3.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean structural similarity per sample, 2D or 3D, optionally inside a mask.

    Equals ``skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=sigma,
    use_sample_covariance=False, data_range=data_range)`` per channel (Wang et al. 2004 settings),
    averaged over channels. As in scikit-image, the SSIM map is averaged only over voxels at least
    ``r = int(truncate * sigma + 0.5)`` voxels from every border (5 for the defaults), where the
    ``2r + 1`` Gaussian window lies inside the image; border padding therefore never matters.

    Variances are computed as ``E[x²] - E[x]²`` on inputs centred by a per-sample, per-channel
    offset (the mean of both images), which removes float32 cancellation for data with a large
    offset (HU, MR signal in the thousands); SSIM is unchanged by the centring because the
    luminance term adds the offset back.

    Args:
        pred: ``(B, C, *spatial)`` with 2 or 3 spatial dims, each at least ``2r + 1``, or one image
            ``(C, *spatial)``; the layout comes from ``spatial_dims``, else from the type (an
            unbatched MONAI ``MetaTensor`` from ``load_volume`` or a ``Translator`` is one image; a
            plain 5-dim tensor a 3D batch; a plain 4-dim tensor is ambiguous and refused).
        target: Reference, same shape and device as ``pred``.
        data_range: Dynamic range of the data (max - min possible value), used for the stability
            constants ``(k1 * data_range)²`` and ``(k2 * data_range)²``: a positive number or a
            ``(B,)`` tensor (one per sample; its values are not checked).
        mask: Optional boolean / 0-1 tensor ``(B or 1, 1 or C, *spatial)`` (``(1 or C, *spatial)``
            for an unbatched MetaTensor), spatial sizes equal to the images'. The SSIM map
            is averaged over mask voxels inside the valid (border-cropped) region. A sample whose
            cropped mask is empty gives NaN.
        spatial_dims: 2 or 3: ``pred`` is ``(B, C, *spatial)`` or one image ``(C, *spatial)`` with
            that many spatial dims. Needed for plain 4-dim tensors (a 2D batch or one volume).
        sigma: Standard deviation of the Gaussian window, in voxels.
        truncate: Window radius in standard deviations (scikit-image fixes it at 3.5).
        k1: Luminance stability constant.
        k2: Contrast stability constant.

    Returns:
        ``(B,)`` SSIM values in the compute dtype (float64 for float64 input, else float32); a 0-d
        tensor for one image.

    Raises:
        InputDataError: if shapes differ or are not ``(B, C, *spatial)`` with 2-3 spatial dims, an
            image is smaller than the window, the mask does not have the inputs' layout, or ``data_range``,
            ``sigma``, ``truncate``, ``k1`` or ``k2`` is out of range.
    """
    pair = check_pair("ssim", pred, target, spatial_dims)
    x, y = pair.pred, pair.target
    crange = as_data_range("ssim", data_range, x)
    bool_mask = as_mask("ssim", mask, pair)
    if not (sigma > 0 and truncate > 0):
        raise InputDataError(f"ssim: sigma and truncate must be positive, got sigma={sigma}, truncate={truncate}")
    if not (k1 >= 0 and k2 >= 0):
        raise InputDataError(f"ssim: k1 and k2 must be non-negative, got k1={k1}, k2={k2}")
    kernel = gaussian_kernel1d(sigma, truncate, dtype=x.dtype, device=x.device)
    radius = kernel.numel() // 2
    if min(x.shape[2:]) < kernel.numel():
        raise InputDataError(
            f"ssim: every spatial size must be at least the window size {kernel.numel()} "
            f"(sigma={sigma}, truncate={truncate}), got shape {tuple(x.shape)}"
        )

    c1 = (k1 * crange) ** 2
    c2 = (k2 * crange) ** 2
    luminance, contrast_structure = ssim_terms(x, y, kernel, c1, c2)
    ssim_map = luminance * contrast_structure
    spatial = tuple(range(2, x.ndim))

    if bool_mask is not None:
        for axis in spatial:  # keep the mask voxels where the SSIM map is defined
            bool_mask = bool_mask.narrow(axis, radius, bool_mask.shape[axis] - 2 * radius)
    return pair.result(masked_sample_mean(ssim_map, bool_mask))


def ssim_terms(
    x: torch.Tensor, y: torch.Tensor, kernel: torch.Tensor, c1: float | torch.Tensor, c2: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Luminance and contrast-structure maps of SSIM on the valid region (Gaussian local moments).

    Variances are computed as ``E[x²] - E[x]²`` on inputs centred by a per-sample, per-channel
    offset (the mean of both images), which removes float32 cancellation for data with a large
    offset; the luminance term adds the offset back.

    Args:
        x: ``(B, C, *spatial)`` in the compute dtype.
        y: Same shape as ``x``.
        kernel: Symmetric 1D window of odd length ``2r + 1`` (same dtype and device).
        c1: Luminance constant ``(k1 * data_range)²`` (number or broadcastable tensor).
        c2: Contrast constant ``(k2 * data_range)²``.

    Returns:
        ``(2 ux uy + c1) / (ux² + uy² + c1)`` and ``(2 cov + c2) / (vx + vy + c2)``, each
        ``(B, C, *(s - 2r))``.
    """
    spatial_dims = x.ndim - 2
    spatial = tuple(range(2, x.ndim))
    # the offset cancels in every term; detached because the result does not depend on it
    offset = (0.5 * (x.mean(dim=spatial, keepdim=True) + y.mean(dim=spatial, keepdim=True))).detach()
    xc, yc = x - offset, y - offset  # (B, C, *spatial)
    # local moments of the centred images, each (B, C, *valid) with valid = spatial - 2r
    # (one product at a time, so at most one full-size product is alive)
    mu_x = filter_valid(xc, kernel, spatial_dims)
    mu_y = filter_valid(yc, kernel, spatial_dims)
    e_xx = filter_valid(xc * xc, kernel, spatial_dims)
    e_yy = filter_valid(yc * yc, kernel, spatial_dims)
    e_xy = filter_valid(xc * yc, kernel, spatial_dims)
    # fused and in-place ops on fresh intermediates only (autograd-safe): ~12 passes instead of ~22
    mean_x, mean_y = mu_x + offset, mu_y + offset
    lum_den = (mean_x * mean_x).addcmul_(mean_y, mean_y).add_(c1)  # ux² + uy² + c1
    diff = mu_x - mu_y
    lum_num = torch.addcmul(lum_den, diff, diff, value=-1)  # 2 ux uy + c1, without cancellation
    cs_den = (e_xx + e_yy).addcmul_(mu_x, mu_x, value=-1).addcmul_(mu_y, mu_y, value=-1).add_(c2)  # vx + vy + c2
    cs_num = torch.addcmul(e_xy, mu_x, mu_y, value=-1).mul_(2).add_(c2)  # 2 cov + c2
    return lum_num / lum_den, cs_num / cs_den
