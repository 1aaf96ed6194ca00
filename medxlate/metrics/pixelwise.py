"""Voxel-wise error metrics: PSNR and MAE, per sample, optionally inside a mask."""

from __future__ import annotations

import torch

from medxlate.metrics._inputs import as_data_range, as_mask, check_pair, masked_sample_mean


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float | torch.Tensor,
    mask: torch.Tensor | None = None,
    spatial_dims: int | None = None,
) -> torch.Tensor:
    """Peak signal-to-noise ratio per sample, ``10 log10(data_range² / MSE)``, in dB.

    The MSE of a sample is averaged over voxels (inside ``mask``) per channel, then over channels;
    unmasked, this equals ``skimage.metrics.peak_signal_noise_ratio`` on the sample's
    ``(C, *spatial)`` array.

    Args:
        pred: ``(B, C, *spatial)`` with 2 or 3 spatial dims, or one image ``(C, *spatial)``; the
            layout comes from ``spatial_dims``, else from the type (an unbatched MONAI ``MetaTensor``
            from ``load_volume`` or a ``Translator`` is one image; a plain 5-dim tensor a 3D batch;
            a plain 4-dim tensor is ambiguous and refused).
        target: Reference, same shape and device as ``pred``.
        data_range: Dynamic range of the data (max - min possible value): a positive number or a
            ``(B,)`` tensor (one per sample; its values are not checked).
        mask: Optional boolean / 0-1 tensor ``(B or 1, 1 or C, *spatial)`` (``(1 or C, *spatial)``
            for an unbatched MetaTensor), spatial sizes equal to the images'; only voxels
            inside count. A sample with an empty mask gives NaN.
        spatial_dims: 2 or 3: ``pred`` is ``(B, C, *spatial)`` or one image ``(C, *spatial)`` with
            that many spatial dims. Needed for plain 4-dim tensors (a 2D batch or one volume).

    Returns:
        ``(B,)`` PSNR in dB in the compute dtype (float64 for float64 input, else float32);
        ``inf`` where the MSE is 0 (identical images); a 0-d tensor for one image.

    Raises:
        InputDataError: if shapes differ or are not ``(B, C, *spatial)`` with 2-3 spatial dims, the
            mask does not have the inputs' layout, or ``data_range`` is invalid.
    """
    pair = check_pair("psnr", pred, target, spatial_dims)
    x, y = pair.pred, pair.target
    crange = as_data_range("psnr", data_range, x)
    bool_mask = as_mask("psnr", mask, pair)
    mse = masked_sample_mean((x - y) ** 2, bool_mask)  # (B,)
    if isinstance(crange, torch.Tensor):
        crange = crange.reshape(-1)  # (B or 1,)
    return pair.result(10 * torch.log10(crange**2 / mse))


def mae(
    pred: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None, spatial_dims: int | None = None
) -> torch.Tensor:
    """Mean absolute error per sample, in the images' units.

    Averaged over voxels (inside ``mask``) per channel, then over channels.

    Args:
        pred: ``(B, C, *spatial)`` with 2 or 3 spatial dims, or one image ``(C, *spatial)``; the
            layout comes from ``spatial_dims``, else from the type (an unbatched MONAI ``MetaTensor``
            from ``load_volume`` or a ``Translator`` is one image; a plain 5-dim tensor a 3D batch;
            a plain 4-dim tensor is ambiguous and refused).
        target: Reference, same shape and device as ``pred``.
        mask: Optional boolean / 0-1 tensor ``(B or 1, 1 or C, *spatial)`` (``(1 or C, *spatial)``
            for an unbatched MetaTensor), spatial sizes equal to the images'; only voxels
            inside count. A sample with an empty mask gives NaN.
        spatial_dims: 2 or 3: ``pred`` is ``(B, C, *spatial)`` or one image ``(C, *spatial)`` with
            that many spatial dims. Needed for plain 4-dim tensors (a 2D batch or one volume).

    Returns:
        ``(B,)`` MAE in the compute dtype (float64 for float64 input, else float32); a 0-d tensor
        for one image.

    Raises:
        InputDataError: if shapes differ or are not ``(B, C, *spatial)`` with 2-3 spatial dims, or
            the mask does not have the inputs' layout.
    """
    pair = check_pair("mae", pred, target, spatial_dims)
    bool_mask = as_mask("mae", mask, pair)
    return pair.result(masked_sample_mean((pair.pred - pair.target).abs(), bool_mask))
