"""Intensity normalisation: CT HU windows and per-volume MR percentile scaling, with their inverses.

All functions are pure: they take tensors and numbers and return new tensors. The network works in
[-1, 1] (Tanh output); these map physical units to that range and back.
"""

from __future__ import annotations

import torch
from monai.transforms import ScaleIntensityRange

from medxlate.errors import InputDataError

# torch.quantile refuses inputs above 2**24 elements; subsample deterministically beyond that.
_QUANTILE_MAX_ELEMENTS = 2**24


def window_to_unit(image: torch.Tensor, window: tuple[float, float]) -> torch.Tensor:
    """Clip ``image`` to ``window`` (e.g. CT HU) and scale it linearly to [-1, 1].

    Args:
        image: Tensor in physical units (HU for CT).
        window: ``(low, high)``; values outside are clipped.

    Returns:
        Tensor of the same shape in [-1, 1].
    """
    low, high = window
    scale = ScaleIntensityRange(a_min=low, a_max=high, b_min=-1.0, b_max=1.0, clip=True)
    return scale(image)


def unit_to_range(image: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Inverse of the [-1, 1] scaling: map -1 to ``value_range[0]`` and 1 to ``value_range[1]``."""
    low, high = value_range
    return (image + 1.0) * (0.5 * (high - low)) + low


def range_to_unit(image: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Map ``value_range`` linearly onto [-1, 1] without clipping (MR: values may exceed p99.5)."""
    low, high = value_range
    if not high > low:
        raise InputDataError(f"intensity range must be increasing, got ({low}, {high}): is the image constant?")
    return (image - low) * (2.0 / (high - low)) - 1.0


def percentile_range(
    image: torch.Tensor,
    percentiles: tuple[float, float],
    mask: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Intensity values at two percentiles, over the whole image or inside ``mask``.

    Args:
        image: Tensor of any shape.
        percentiles: ``(lower, upper)`` in [0, 100].
        mask: Optional boolean tensor broadcastable to ``image``; only voxels inside count.

    Returns:
        ``(value_at_lower, value_at_upper)`` as Python floats.

    Raises:
        InputDataError: if the mask selects no voxel or the image is constant.
    """
    values = image[mask.expand_as(image).bool()] if mask is not None else image.reshape(-1)
    if values.numel() == 0:
        raise InputDataError("cannot compute intensity percentiles: the mask selects no voxel")
    values = values.float()
    if values.numel() > _QUANTILE_MAX_ELEMENTS:
        stride = -(-values.numel() // _QUANTILE_MAX_ELEMENTS)
        values = values[::stride]
    q = torch.tensor([percentiles[0] / 100.0, percentiles[1] / 100.0], dtype=values.dtype)
    low, high = torch.quantile(values, q.to(values.device)).tolist()
    if not high > low:
        raise InputDataError(
            f"intensities at percentiles {list(percentiles)} are equal ({low}): the image is (nearly) constant"
        )
    return float(low), float(high)
