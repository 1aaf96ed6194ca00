"""Argument checks and the masked per-sample reduction shared by the metric functions.

Every check looks at shapes, dtypes and devices only, never at tensor values, so no metric forces
a host-device synchronisation.
"""

from __future__ import annotations

import numbers

import torch

from medxlate.errors import InputDataError

SPATIAL_DIMS = (2, 3)


def check_pair(metric: str, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (pred, target) pair and cast both to the compute dtype.

    The compute dtype is float64 when either input is float64, else float32 (half-precision and
    integer inputs are upcast).

    Args:
        metric: Name of the calling metric, used in messages.
        pred: ``(B, C, *spatial)`` with 2 or 3 spatial dims.
        target: Same shape and device as ``pred``.

    Returns:
        ``pred`` and ``target`` in the compute dtype.

    Raises:
        InputDataError: if an input is not a real-valued tensor, the shapes differ, the number of
            dimensions is not 4 or 5, or the devices differ.
    """
    for name, value in (("pred", pred), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise InputDataError(f"{metric}: {name} must be a torch.Tensor, got {type(value).__name__}")
        if value.is_complex():
            raise InputDataError(f"{metric}: {name} must be real-valued, got dtype {value.dtype}")
    if pred.shape != target.shape:
        raise InputDataError(
            f"{metric}: pred and target must have the same shape, "
            f"got pred {tuple(pred.shape)} and target {tuple(target.shape)}"
        )
    if pred.ndim - 2 not in SPATIAL_DIMS:
        raise InputDataError(
            f"{metric}: expected (B, C, *spatial) with 2 or 3 spatial dims (4 or 5 dims in all), "
            f"got shape {tuple(pred.shape)}"
        )
    if pred.device != target.device:
        raise InputDataError(
            f"{metric}: pred and target must be on the same device, got {pred.device} and {target.device}"
        )
    wide = torch.float64 in (pred.dtype, target.dtype)
    dtype = torch.float64 if wide else torch.float32
    return pred.to(dtype), target.to(dtype)


def as_mask(metric: str, mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """Validate ``mask`` and return it as a boolean tensor on ``like``'s device.

    Args:
        metric: Name of the calling metric, used in messages.
        mask: ``None`` or a boolean / 0-1 tensor broadcastable to ``like`` with the same number of
            dimensions, i.e. ``(B or 1, 1 or C, *spatial)``. Any nonzero value counts as inside.
        like: The validated ``pred`` tensor.

    Returns:
        ``None`` or the boolean mask (not expanded).

    Raises:
        InputDataError: if ``mask`` is not a tensor or does not broadcast to ``like``'s shape.
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise InputDataError(f"{metric}: mask must be a torch.Tensor or None, got {type(mask).__name__}")
    expected = f"(B or 1, 1 or C, *spatial) for pred of shape {tuple(like.shape)}"
    try:
        broadcast = torch.broadcast_shapes(mask.shape, like.shape)
    except RuntimeError as e:
        raise InputDataError(f"{metric}: mask of shape {tuple(mask.shape)} does not match {expected}") from e
    if mask.ndim != like.ndim or broadcast != like.shape:
        raise InputDataError(f"{metric}: mask of shape {tuple(mask.shape)} does not match {expected}")
    mask = mask.to(like.device, non_blocking=True)
    return mask if mask.dtype == torch.bool else mask != 0


def as_data_range(metric: str, data_range: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """Validate ``data_range`` and shape it to broadcast against ``like`` sample-wise.

    Args:
        metric: Name of the calling metric, used in messages.
        data_range: A positive number, or a 0-d / ``(B,)`` tensor (values not checked, to avoid a
            host sync).
        like: The validated ``pred`` tensor ``(B, C, *spatial)``.

    Returns:
        A float, or a tensor of shape ``(B or 1, 1, 1, ...)`` in ``like``'s dtype and device.

    Raises:
        InputDataError: if ``data_range`` is not a positive finite number or a tensor of shape
            ``()`` or ``(B,)``.
    """
    if isinstance(data_range, torch.Tensor):
        if data_range.shape not in ((), (like.shape[0],)):
            raise InputDataError(
                f"{metric}: data_range tensor must have shape () or (B,) = ({like.shape[0]},), "
                f"got {tuple(data_range.shape)}"
            )
        per_sample = data_range.to(like.device, like.dtype, non_blocking=True)
        return per_sample.reshape(-1, *([1] * (like.ndim - 1)))  # (B or 1, 1, *1s)
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real):
        raise InputDataError(f"{metric}: data_range must be a positive number or a (B,) tensor, got {data_range!r}")
    value = float(data_range)
    if not value > 0 or value == float("inf"):
        raise InputDataError(f"{metric}: data_range must be positive and finite, got {value}")
    return value


def masked_sample_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the spatial axes (inside ``mask``), then over channels: one value per sample.

    Args:
        values: ``(B, C, *spatial)`` per-voxel values.
        mask: ``None`` or a boolean mask broadcastable to ``values``.

    Returns:
        ``(B,)``; NaN for a sample whose mask is empty in any channel (0 / 0).
    """
    spatial = tuple(range(2, values.ndim))
    if mask is None:
        return values.mean(dim=spatial).mean(dim=1)
    total = torch.where(mask, values, values.new_zeros(())).sum(dim=spatial)  # (B, C)
    count = mask.sum(dim=spatial).to(values.dtype)  # (B or 1, 1 or C)
    return (total / count).mean(dim=1)
