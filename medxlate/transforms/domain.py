"""What a model was trained on (spacing, source intensities, field of view), and what follows at inference.

Recorded in the checkpoint's preprocessing record (:class:`TrainingDomain`), from the training
volumes as the model saw them (canonical RAS grid, source clipped to its window), in the spirit of
nnU-Net's dataset fingerprint. At inference it decides the grid an input is translated on and
warns about inputs unlike the training data.

Spacing rule (when ``data.pixdim`` is not configured, i.e. training used each volume's own
spacing): an input axis whose spacing lies within the training volumes' range on that axis
(``[min, max]`` widened by :data:`SPACING_TOLERANCE`) is kept, exactly as training treated its own
volumes; an axis outside that range is resampled to the training median (nnU-Net's target
spacing), and the output is resampled back onto the input's grid. For slice-wise 2D models only
the in-plane axes (RAS x, y) are considered: the network sees one axial slice at a time, so the
through-plane spacing never reaches it, and keeping the input's slices avoids inventing slices
and interpolating the result back along z. 2.5D models stack neighbouring slices as channels, so
the slice distance is part of what they learned: the through-plane axis follows the rule too, as it does for 3D models.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import nibabel as nib
import numpy as np
import torch

from medxlate.errors import CheckpointError, InputDataError
from medxlate.transforms.intensity import percentile_range, unit_to_range

logger = logging.getLogger(__name__)

SPACING_TOLERANCE = 0.05  # relative widening of the training spacing range before resampling
INTENSITY_PERCENTILES = (0.5, 99.5)
INTENSITY_MARGIN = 0.25  # a percentile this fraction of the training range away is "far"
FOV_FACTOR = 2.0  # an in-plane extent beyond [min / 2, 2 * max] of training is "far"
_SAMPLES_PER_VOLUME = 200_000

Triple = tuple[float, float, float]


def intensity_sample(volume: Any) -> torch.Tensor:
    """The voxels of a (C, X, Y, Z) source that the training domain's intensity percentiles use.

    Every ``numel // 200_000``-th voxel in C-order (at least 1 apart), as float32. An object with an
    ``intensity_sample`` attribute (a cached source: :class:`medxlate.data.cache.MappedSources`,
    which stores the sample when the cache is built) gives it instead, so recording the domain
    does not read whole volumes at every start.
    """
    cached = getattr(volume, "intensity_sample", None)
    if cached is not None:
        return torch.as_tensor(cached).float()
    data = volume.as_tensor() if hasattr(volume, "as_tensor") else torch.as_tensor(volume)
    flat = data.reshape(-1)
    stride = max(1, flat.numel() // _SAMPLES_PER_VOLUME)
    return flat[::stride].float()


def _per_ras_axis(per_voxel_axis: Sequence[float], affine: torch.Tensor | np.ndarray) -> Triple:
    """Reorder values given per voxel axis into RAS x, y, z order (the axis each voxel axis maps to)."""
    matrix = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64)
    ornt = nib.orientations.io_orientation(matrix)  # voxel axis i -> RAS axis ornt[i, 0]
    out = [0.0, 0.0, 0.0]
    for voxel_axis, (ras_axis, _flip) in enumerate(ornt):
        out[int(ras_axis)] = float(per_voxel_axis[voxel_axis])
    return (out[0], out[1], out[2])


def ras_spacing(affine: torch.Tensor | np.ndarray) -> Triple:
    """Voxel spacing (mm) along RAS x, y, z, whatever the voxel axis order of ``affine``."""
    matrix = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64)
    return _per_ras_axis(np.linalg.norm(matrix[:3, :3], axis=0).tolist(), matrix)


def ras_extent(shape: Sequence[int], affine: torch.Tensor | np.ndarray) -> Triple:
    """Field of view (mm) along RAS x, y, z: voxel count times spacing per axis."""
    matrix = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64)
    per_voxel = np.asarray(shape[:3], dtype=np.float64) * np.linalg.norm(matrix[:3, :3], axis=0)
    return _per_ras_axis(per_voxel.tolist(), matrix)


@dataclass(frozen=True)
class TrainingDomain:
    """Statistics of the training source volumes, as the model saw them.

    Attributes:
        spacing_median: Median spacing (mm) along RAS x, y, z: the target spacing at inference.
        spacing_min: Smallest spacing per RAS axis.
        spacing_max: Largest spacing per RAS axis.
        source_percentiles: Source intensities (units of the source, e.g. HU, after clipping to the
            window) at :data:`INTENSITY_PERCENTILES`, pooled over the training volumes.
        fov_min: Smallest field of view (mm) per RAS axis.
        fov_max: Largest field of view (mm) per RAS axis.
    """

    spacing_median: Triple
    spacing_min: Triple
    spacing_max: Triple
    source_percentiles: tuple[float, float]
    fov_min: Triple
    fov_max: Triple

    @classmethod
    def from_volumes(cls, sources: Sequence[Any], window: tuple[float, float]) -> TrainingDomain:
        """Statistics of training sources given in model units ([-1, 1]) on their canonical grid.

        Args:
            sources: (C, X, Y, Z) MetaTensors with their ``affine``.
            window: The source window that maps source units to [-1, 1].

        Raises:
            InputDataError: if ``sources`` is empty or their intensities are constant.
        """
        if not sources:
            raise InputDataError("cannot record the training domain: no training volume")
        spacings = np.array([ras_spacing(v.affine) for v in sources])
        extents = np.array([ras_extent(v.shape[1:], v.affine) for v in sources])
        samples = [unit_to_range(intensity_sample(volume), window) for volume in sources]
        low, high = percentile_range(torch.cat(samples), INTENSITY_PERCENTILES)
        return cls(
            spacing_median=_triple(np.median(spacings, axis=0)),
            spacing_min=_triple(spacings.min(axis=0)),
            spacing_max=_triple(spacings.max(axis=0)),
            source_percentiles=(round(low, 4), round(high, 4)),
            fov_min=_triple(extents.min(axis=0)),
            fov_max=_triple(extents.max(axis=0)),
        )

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-able representation."""
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingDomain:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            CheckpointError: if fields are missing, unknown or malformed.
        """
        try:
            return cls(**{k: tuple(float(x) for x in v) for k, v in data.items()})
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint training-domain record is not understood: {e}") from e

    def inference_spacing(self, affine: torch.Tensor | np.ndarray, through_plane: bool) -> Triple | None:
        """The spacing to translate an input on (see the module's spacing rule), or ``None`` to keep it.

        Args:
            affine: The input's voxel-to-RAS affine.
            through_plane: Whether the RAS z spacing matters to the model (2.5D) or not (2D).

        Returns:
            Spacing along RAS x, y, z (input's own on axes kept), or ``None`` if every axis is kept.
        """
        own = ras_spacing(affine)
        axes = (0, 1, 2) if through_plane else (0, 1)
        target = list(own)
        for axis in axes:
            low = self.spacing_min[axis] * (1 - SPACING_TOLERANCE)
            high = self.spacing_max[axis] * (1 + SPACING_TOLERANCE)
            if not low <= own[axis] <= high:
                target[axis] = self.spacing_median[axis]
        return None if tuple(target) == own else (target[0], target[1], target[2])

    def warn_if_unfamiliar(self, volume: torch.Tensor, affine: Any, window: tuple[float, float]) -> list[str]:
        """Log one warning per way ``volume`` is far from the training data (intensities, field of view).

        Args:
            volume: The input in source units (C, X, Y, Z), any orientation.
            affine: Its voxel-to-RAS affine.
            window: The source window (intensities are compared after clipping to it, as the model sees them).

        Returns:
            The warnings logged (empty when the input looks like the training data).
        """
        warnings: list[str] = []
        train_low, train_high = self.source_percentiles
        margin = INTENSITY_MARGIN * (train_high - train_low)
        sample = volume.reshape(-1)
        sample = sample[:: max(1, sample.numel() // (4 * _SAMPLES_PER_VOLUME))].float().clamp(*window)
        try:
            low, high = percentile_range(sample, INTENSITY_PERCENTILES)
        except InputDataError:
            low = high = float(sample[0]) if sample.numel() else float("nan")
        if not (abs(low - train_low) <= margin and abs(high - train_high) <= margin):
            warnings.append(
                f"input intensities p{INTENSITY_PERCENTILES[0]:g}..p{INTENSITY_PERCENTILES[1]:g} = "
                f"[{low:.4g}, {high:.4g}] are far from the training data's [{train_low:.4g}, {train_high:.4g}] "
                "(wrong modality, units or rescaling?); the translation may be unreliable"
            )
        extent = ras_extent(volume.shape[1:], affine)
        far = [
            axis
            for axis in (0, 1)
            if not self.fov_min[axis] / FOV_FACTOR <= extent[axis] <= self.fov_max[axis] * FOV_FACTOR
        ]
        if far:
            warnings.append(
                f"input field of view {extent[0]:.4g} x {extent[1]:.4g} mm (RAS x, y) is far from the training "
                f"data's {self.fov_min[0]:.4g}..{self.fov_max[0]:.4g} x {self.fov_min[1]:.4g}..{self.fov_max[1]:.4g} mm"
                "; the translation may be unreliable"
            )
        for message in warnings:
            logger.warning(message)
        return warnings


def _triple(values: np.ndarray) -> Triple:
    return (round(float(values[0]), 6), round(float(values[1]), 6), round(float(values[2]), 6))
