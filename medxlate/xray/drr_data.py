"""Training data for X-ray -> CT: CT on the model grid, DRRs of it, and augmentations of both.

* :func:`to_model_grid`: a CT (any orientation and spacing) resampled to the model grid, a cube of
  ``size``^3 voxels covering ``fov_mm`` in every direction, RAS-oriented, isotropic, centred on the
  CT's centre. Outside the CT is air (-1024 HU). A CT that covers less than ``min_coverage`` of the
  field along an axis is refused; otherwise the coverage is recorded.
* :func:`jitter_pose`: a small random rotation of the volume about the isocentre (its affine), so
  that DRRs rendered from it see the patient slightly turned, as real positioning does.
* :func:`augment_views`: intensity and detector augmentations of rendered views in ``[-1, 1]``:
  gamma (contrast), Gaussian blur, Gaussian noise and a detector offset (shift in pixels). Random
  parameters are drawn from an explicit ``torch.Generator``, then applied deterministically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from medxlate.errors import InputDataError

__all__ = ["ViewAugmentation", "augment_views", "jitter_pose", "to_model_grid"]

AIR_HU = -1024.0


def to_model_grid(
    ct: MetaTensor, size: int = 128, fov_mm: float = 320.0, min_coverage: float = 0.5
) -> tuple[MetaTensor, dict[str, Any]]:
    """Resample a CT in HU onto the cubic, isotropic, RAS model grid centred on the CT.

    Args:
        ct: ``(1, X, Y, Z)`` MetaTensor in HU with its affine.
        size: voxels per side.
        fov_mm: field of view per side (spacing ``fov_mm / size``).
        min_coverage: smallest fraction of the field the CT must span along every world axis.

    Returns:
        ``(grid (1, size, size, size) in HU with the grid's affine, record)``; the record holds the
        spacing, the field and the CT's coverage of it per axis (x, y, z).

    Raises:
        InputDataError: if the CT covers less than ``min_coverage`` of the field along an axis.
    """
    affine = torch.as_tensor(ct.affine, dtype=torch.float64)
    shape = torch.tensor(ct.shape[1:], dtype=torch.float64)
    corners = torch.cartesian_prod(*[torch.tensor([-0.5, n - 0.5], dtype=torch.float64) for n in shape.tolist()])
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    extent = world.amax(dim=0) - world.amin(dim=0)  # the CT's extent along x, y, z in mm
    coverage = (extent / fov_mm).clamp(max=1.0)
    if bool((coverage < min_coverage).any()):
        raise InputDataError(
            f"CT spans {[round(float(e), 1) for e in extent]} mm along (x, y, z); the model's field is "
            f"{fov_mm} mm per side and at least {min_coverage:.0%} must be covered along every axis"
        )
    spacing = fov_mm / size
    centre = affine[:3, :3] @ ((shape - 1) / 2) + affine[:3, 3]
    grid_affine = torch.diag(torch.tensor([spacing, spacing, spacing, 1.0], dtype=torch.float64))
    grid_affine[:3, 3] = centre - spacing * (size - 1) / 2
    from monai.transforms import SpatialResample

    shifted = MetaTensor(ct.as_tensor().to(torch.float32) - AIR_HU, affine=affine)  # air -> 0: zero padding is air
    resample = SpatialResample(mode="bilinear", padding_mode="zeros", align_corners=False, dtype=torch.float64)
    resampled = resample(shifted, dst_affine=grid_affine, spatial_size=(size, size, size))
    record = {
        "size": size,
        "fov_mm": fov_mm,
        "spacing_mm": spacing,
        "coverage_xyz": [round(float(c), 4) for c in coverage],
    }
    return MetaTensor(resampled.as_tensor().to(torch.float32) + AIR_HU, affine=grid_affine), record


def jitter_pose(
    affine: torch.Tensor, spatial_shape: tuple[int, ...], max_deg: float, generator: torch.Generator
) -> torch.Tensor:
    """Rotate a volume's placement about its centre by a random small rotation.

    Args:
        affine: ``(4, 4)`` voxel -> world affine.
        spatial_shape: ``(X, Y, Z)`` of the volume.
        max_deg: largest rotation about each world axis (uniform in ``[-max_deg, max_deg]``).
        generator: the random source.

    Returns:
        The new ``(4, 4)`` float64 affine; the centre of the volume (the isocentre) does not move.
    """
    angles = (torch.rand(3, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(max_deg)
    rotation = torch.eye(3, dtype=torch.float64)
    for axis, angle in enumerate(angles.tolist()):
        c, s = math.cos(angle), math.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = torch.eye(3, dtype=torch.float64)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rotation = r @ rotation
    affine = torch.as_tensor(affine, dtype=torch.float64)
    centre = affine[:3, :3] @ ((torch.tensor(spatial_shape, dtype=torch.float64) - 1) / 2) + affine[:3, 3]
    out = affine.clone()
    out[:3, :3] = rotation @ affine[:3, :3]
    out[:3, 3] = centre - out[:3, :3] @ ((torch.tensor(spatial_shape, dtype=torch.float64) - 1) / 2)
    return out


@dataclass(frozen=True)
class ViewAugmentation:
    """Ranges of the view augmentations (each disabled by its neutral value).

    Attributes:
        gamma: ``(low, high)`` of the gamma applied to views mapped to ``[0, 1]``.
        blur_sigma_px: ``(low, high)`` Gaussian blur sigma in pixels.
        noise_std: ``(low, high)`` standard deviation of additive Gaussian noise (in ``[-1, 1]`` units).
        max_offset_px: largest detector offset (shift) in pixels along rows and columns.
    """

    gamma: tuple[float, float] = (0.8, 1.25)
    blur_sigma_px: tuple[float, float] = (0.0, 1.0)
    noise_std: tuple[float, float] = (0.0, 0.03)
    max_offset_px: int = 2


def _uniform(bounds: tuple[float, float], generator: torch.Generator) -> float:
    return bounds[0] + (bounds[1] - bounds[0]) * float(torch.rand((), generator=generator, dtype=torch.float64))


def augment_views(
    views: torch.Tensor, config: ViewAugmentation, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Augment ``(V, H, W)`` views in ``[-1, 1]``: gamma, blur, detector offset, noise (in that order).

    Args:
        views: the views of one case.
        config: the parameter ranges.
        generator: the random source (one draw per parameter, then deterministic transforms).

    Returns:
        ``(augmented views in [-1, 1], the parameters drawn)``.
    """
    gamma = _uniform(config.gamma, generator)
    sigma = _uniform(config.blur_sigma_px, generator)
    offset = torch.randint(-config.max_offset_px, config.max_offset_px + 1, (2,), generator=generator).tolist()
    noise_std = _uniform(config.noise_std, generator)
    noise = torch.randn(views.shape, generator=generator, dtype=views.dtype) * noise_std
    out = (((views + 1) / 2).clamp(0, 1) ** gamma) * 2 - 1
    if sigma > 0:
        radius = max(1, math.ceil(3 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=views.dtype)
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        kernel = kernel / kernel.sum()
        padded = F.pad(out[:, None], (radius, radius, radius, radius), mode="replicate")
        out = F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))[:, 0]
    out = _shift(out, offset[0], offset[1])
    out = (out + noise.to(out.device)).clamp(-1.0, 1.0)
    return out, {"gamma": gamma, "blur_sigma_px": sigma, "offset_px": offset, "noise_std": noise_std}


def _shift(views: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Shift image content by ``(rows, cols)`` pixels; uncovered pixels take the background (-1)."""
    out = torch.full_like(views, -1.0)
    h, w = views.shape[-2:]
    src_r, dst_r = slice(max(0, -rows), h - max(0, rows)), slice(max(0, rows), h - max(0, -rows))
    src_c, dst_c = slice(max(0, -cols), w - max(0, cols)), slice(max(0, cols), w - max(0, -cols))
    out[..., dst_r, dst_c] = views[..., src_r, src_c]
    return out
