"""The preprocessing recipe a model was trained with, stored in its checkpoint and rebuilt for inference.

:class:`Preprocessing` is plain data (JSON-able, ``weights_only``-loadable); its methods turn volumes
in physical units into the model's input space and back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from medxlate.errors import CheckpointError
from medxlate.transforms.intensity import percentile_range, range_to_unit, unit_to_range, window_to_unit
from medxlate.transforms.spatial import to_canonical


@dataclass(frozen=True)
class Preprocessing:
    """How volumes are brought to the model and back.

    Attributes:
        source_window: Source (CT) window in HU mapped to [-1, 1] with clipping.
        target_percentiles: Per-volume target (MR) percentiles mapped to [-1, 1].
        target_range: Reference target intensities ``(low, high)`` (mean of the training volumes'
            percentile values); model outputs are mapped back to target units with it.
        pixdim: Spacing (mm) volumes are resampled to, or ``None``.
        context_slices: Neighbouring slices on each side given as channels (2.5D).
        divisible: In-plane sizes are padded to a multiple of this (the generator's total stride).
    """

    source_window: tuple[float, float]
    target_percentiles: tuple[float, float]
    target_range: tuple[float, float] | None = None
    pixdim: tuple[float, float, float] | None = None
    context_slices: int = 0
    divisible: int = 1
    version: int = field(default=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able representation (lists instead of tuples)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Rebuild from :meth:`to_dict` output (e.g. read from a checkpoint).

        Raises:
            CheckpointError: if keys are missing or unknown.
        """
        try:
            return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})
        except TypeError as e:
            raise CheckpointError(f"checkpoint preprocessing record is not understood: {e}") from e

    def source_to_model(self, source: MetaTensor) -> MetaTensor:
        """Canonical grid (RAS, optional resampling) and the HU window scaled to [-1, 1]."""
        return window_to_unit(to_canonical(source, self.pixdim), self.source_window)

    def target_to_model(self, target: MetaTensor) -> tuple[MetaTensor, tuple[float, float]]:
        """Canonical grid and per-volume percentile scaling; returns the volume and its (low, high)."""
        canonical = to_canonical(target, self.pixdim)
        value_range = percentile_range(canonical, self.target_percentiles)
        return range_to_unit(canonical, value_range), value_range

    def model_to_target(self, output: torch.Tensor) -> torch.Tensor:
        """Map model output in [-1, 1] to target units with the reference range.

        Raises:
            CheckpointError: if no reference range was recorded.
        """
        if self.target_range is None:
            raise CheckpointError("preprocessing has no target_range: cannot map outputs back to target units")
        return unit_to_range(output, self.target_range)


def stack_context(volume: torch.Tensor, context_slices: int) -> torch.Tensor:
    """Stack neighbouring axial slices as channels for 2.5D models.

    Args:
        volume: (C, X, Y, Z) tensor.
        context_slices: Neighbours on each side; edges repeat the first/last slice.

    Returns:
        (C * (2k + 1), X, Y, Z) tensor, channel blocks ordered from z-k to z+k.
    """
    if context_slices == 0:
        return volume
    k = context_slices
    depth = volume.shape[-1]
    index = torch.arange(depth, device=volume.device)
    blocks = [volume[..., (index + offset).clamp(0, depth - 1)] for offset in range(-k, k + 1)]
    return torch.cat(blocks, dim=0)


def pad_in_plane(volume: torch.Tensor, multiple: int, value: float) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """Pad the two in-plane axes (dims -3, -2 of ``(..., X, Y, Z)``) symmetrically to a multiple.

    Returns:
        The padded tensor and the ``(slice_x, slice_y)`` that crops it back.
    """
    size_x, size_y = volume.shape[-3], volume.shape[-2]
    pad_x, pad_y = (-size_x) % multiple, (-size_y) % multiple
    before_x, before_y = pad_x // 2, pad_y // 2
    # F.pad order: last dim first -> (Z, Y, X)
    padded = F.pad(volume, (0, 0, before_y, pad_y - before_y, before_x, pad_x - before_x), value=value)
    crop = (slice(before_x, before_x + size_x), slice(before_y, before_y + size_y))
    return padded, crop
