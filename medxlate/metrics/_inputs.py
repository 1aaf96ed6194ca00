"""Argument checks and the masked per-sample reduction shared by the metric functions.

Every check looks at shapes, dtypes and devices only, never at tensor values, so no metric forces
a host-device synchronisation.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from monai.data import MetaTensor

from medxlate.errors import InputDataError

SPATIAL_DIMS = (2, 3)


@dataclass(frozen=True)
class Pair:
    """A validated (pred, target) pair in the batched ``(B, C, *spatial)`` layout.

    Attributes:
        pred: Prediction in the compute dtype, batched.
        target: Reference in the compute dtype, batched.
        unbatched: Whether the inputs were single ``(C, *spatial)`` volumes (a batch axis of 1 was
            added; the metric then returns a 0-d tensor).
    """

    pred: torch.Tensor
    target: torch.Tensor
    unbatched: bool

    def result(self, values: torch.Tensor) -> torch.Tensor:
        """``(B,)`` per-sample values, or the single value as a 0-d tensor for unbatched inputs."""
        return values[0] if self.unbatched else values


def _is_unbatched_meta(value: torch.Tensor) -> bool:
    """An unbatched MONAI MetaTensor is, by MONAI's convention, one channel-first image."""
    return isinstance(value, MetaTensor) and not value.is_batch


def check_pair(metric: str, pred: torch.Tensor, target: torch.Tensor, spatial_dims: int | None = None) -> Pair:
    """Validate a (pred, target) pair, resolve its layout and cast both to the compute dtype.

    Layout, never guessed from the sizes:

    * ``spatial_dims`` given (2 or 3): ``spatial_dims + 2`` dims are a batch ``(B, C, *spatial)``,
      ``spatial_dims + 1`` dims are one image ``(C, *spatial)`` (e.g. ``torch.from_numpy(vol)[None]``).
    * Not given: an unbatched MONAI ``MetaTensor`` (``is_batch`` False, e.g. from ``load_volume`` or
      a ``Translator``) is one image ``(C, *spatial)``, as MONAI defines it (if either input is one,
      both are read that way); a batched MetaTensor is ``(B, C, *spatial)``; a plain 5-dim tensor
      is a 3D batch. A plain 4-dim tensor could be a 2D batch ``(B, C, X, Y)`` or one volume
      ``(C, X, Y, Z)`` and is refused: pass ``spatial_dims``.

    The compute dtype is float64 when either input is float64, else float32 (half-precision and
    integer inputs are upcast).

    Args:
        metric: Name of the calling metric, used in messages.
        pred: Image(s) in one of the layouts above, 2 or 3 spatial dims.
        target: Same shape and device as ``pred``.
        spatial_dims: 2 or 3, or ``None`` to read the layout from the tensor type (see above).

    Returns:
        The batched pair in the compute dtype (plain tensors) and whether it was unbatched.

    Raises:
        InputDataError: if an input is not a real-valued tensor, the shapes differ, the layout is
            ambiguous or does not fit ``spatial_dims``, or the devices differ.
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
    unbatched = _resolve_layout(metric, pred, target, spatial_dims)
    if pred.device != target.device:
        raise InputDataError(
            f"{metric}: pred and target must be on the same device, got {pred.device} and {target.device}"
        )
    wide = torch.float64 in (pred.dtype, target.dtype)
    dtype = torch.float64 if wide else torch.float32
    x, y = (_plain(v).to(dtype) for v in (pred, target))
    if unbatched:
        x, y = x[None], y[None]  # (1, C, *spatial)
    return Pair(x, y, unbatched)


def _resolve_layout(metric: str, pred: torch.Tensor, target: torch.Tensor, spatial_dims: int | None) -> bool:
    """Whether the pair is one unbatched image ``(C, *spatial)`` (else a batch); see :func:`check_pair`."""
    shape = tuple(pred.shape)
    meta_unbatched = _is_unbatched_meta(pred) or _is_unbatched_meta(target)
    if spatial_dims is not None:
        if isinstance(spatial_dims, bool) or spatial_dims not in SPATIAL_DIMS:
            raise InputDataError(f"{metric}: spatial_dims must be 2 or 3 (or None), got {spatial_dims!r}")
        if pred.ndim not in (spatial_dims + 1, spatial_dims + 2) or (meta_unbatched and pred.ndim != spatial_dims + 1):
            raise InputDataError(
                f"{metric}: spatial_dims={spatial_dims} expects (B, C, *spatial) ({spatial_dims + 2} dims) or one "
                f"image (C, *spatial) ({spatial_dims + 1} dims), got shape {shape}"
            )
        unbatched = pred.ndim == spatial_dims + 1
    elif meta_unbatched:
        if pred.ndim - 1 not in SPATIAL_DIMS:
            raise InputDataError(
                f"{metric}: an unbatched MetaTensor is one image (C, *spatial) with 2 or 3 spatial dims "
                f"(3 or 4 dims in all), got shape {shape}; pass a batch as plain tensors "
                "(.as_tensor()) of shape (B, C, *spatial)"
            )
        unbatched = True
    elif pred.ndim == 5 or (pred.ndim == 4 and _is_batched_meta(pred, target)):
        unbatched = False
    elif pred.ndim == 4:
        raise InputDataError(
            f"{metric}: a plain tensor of shape {shape} is either a 2D batch (B, C, X, Y) or one volume "
            "(C, X, Y, Z); pass spatial_dims=2 or spatial_dims=3 (or the volume as a MONAI MetaTensor, "
            "e.g. from load_volume)"
        )
    else:
        raise InputDataError(
            f"{metric}: expected (B, C, *spatial) or one image (C, *spatial) with 2 or 3 spatial dims, got "
            f"shape {shape}; pass spatial_dims to say which"
        )
    if unbatched:
        _check_reader_rank(metric, pred, target)
    return unbatched


def _is_batched_meta(*values: torch.Tensor) -> bool:
    """A batched MONAI MetaTensor (``is_batch`` True, as collated) is ``(B, C, *spatial)`` by definition."""
    return any(isinstance(value, MetaTensor) and value.is_batch for value in values)


def _check_reader_rank(metric: str, *values: torch.Tensor) -> None:
    """Refuse an unbatched MetaTensor whose reader recorded a different spatial rank (e.g. ``v[0]``
    of a loaded ``(1, X, Y, Z)`` volume, which MONAI's convention would misread as channels)."""
    for value in values:
        recorded = value.meta.get("spatial_shape") if isinstance(value, MetaTensor) else None
        if recorded is not None and len(recorded) != value.ndim - 1:
            raise InputDataError(
                f"{metric}: got a MetaTensor of shape {tuple(value.shape)} whose reader recorded "
                f"{len(recorded)} spatial dims {tuple(int(n) for n in recorded)}; expected one image "
                "(C, *spatial) with its channel axis"
            )


def _plain(value: torch.Tensor) -> torch.Tensor:
    return value.as_tensor() if isinstance(value, MetaTensor) else value


def as_mask(metric: str, mask: torch.Tensor | None, pair: Pair) -> torch.Tensor | None:
    """Validate ``mask`` and return it as a boolean tensor on the pair's device, batched.

    Args:
        metric: Name of the calling metric, used in messages.
        mask: ``None`` or a boolean / 0-1 tensor in the inputs' layout: ``(B or 1, 1 or C, *spatial)``
            for batched inputs, ``(1 or C, *spatial)`` for an unbatched pair. The spatial sizes must
            equal the images' (a mask never broadcasts along a spatial axis: that is a layout
            mistake, e.g. a slice mask given for a volume). Any nonzero value counts as inside.
        pair: The validated inputs.

    Returns:
        ``None`` or the boolean mask ``(B or 1, 1 or C, *spatial)`` (not expanded).

    Raises:
        InputDataError: if ``mask`` is not a tensor or does not have that layout.
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise InputDataError(f"{metric}: mask must be a torch.Tensor or None, got {type(mask).__name__}")
    like = pair.pred
    shape = tuple(like.shape[1:]) if pair.unbatched else tuple(like.shape)
    layout = "(1 or C, *spatial)" if pair.unbatched else "(B or 1, 1 or C, *spatial)"
    expected = f"{layout} for images of shape {shape}"
    leading = mask.shape[: mask.ndim - (like.ndim - 2)]
    fits = (
        mask.ndim == len(shape)
        and tuple(mask.shape[-(like.ndim - 2) :]) == tuple(like.shape[2:])
        and all(m in (1, n) for m, n in zip(leading, shape, strict=False))
    )
    if not fits:
        raise InputDataError(f"{metric}: mask of shape {tuple(mask.shape)} does not match {expected}")
    mask = _plain(mask).to(like.device, non_blocking=True)
    if pair.unbatched:
        mask = mask[None]
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
