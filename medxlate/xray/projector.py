"""Differentiable cone-beam projector: line integrals of linear attenuation through a volume.

Method: ray marching with trilinear interpolation (``torch.nn.functional.grid_sample``). Each ray
from the source to a detector pixel centre is clipped to the support of the interpolated volume
(voxel index box ``[-1, n]`` per axis: the trilinear interpolant with zero padding is non-zero up
to one voxel outside the centres, and integrating over that box conserves the mass of a voxel
exactly along an axis) and integrated with the midpoint rule at ``samples_per_voxel`` samples per
voxel of the longest clipped ray. Everything is ``torch``: it runs on CPU and GPU, in float32 or
float64, and is differentiable with respect to the volume. This is the same algorithm as the pure
torch path of ``nanodrr`` (see docs/xray2ct.md for why that library is not a dependency).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from medxlate.errors import ConfigError, GeometryError
from medxlate.xray.geometry import Geometry

__all__ = ["DEFAULT_SAMPLES_PER_VOXEL", "line_integrals", "project", "volume_isocentre"]

DEFAULT_SAMPLES_PER_VOXEL = 1.0
_MAX_POINTS_PER_CHUNK = 1 << 22  # grid_sample points per call: bounds memory (~50 MB of float32 grid)


def volume_isocentre(affine: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """World position (RAS mm) of the centre of a volume, the isocentre of every view.

    Args:
        affine: ``(4, 4)`` voxel -> world affine.
        spatial_shape: ``(X, Y, Z)``.

    Returns:
        ``(3,)`` float64 tensor: ``affine @ ((n - 1) / 2, 1)``.
    """
    centre = torch.tensor([(n - 1) / 2 for n in spatial_shape] + [1.0], dtype=torch.float64)
    return (affine.to(torch.float64).cpu() @ centre)[:3]


def line_integrals(
    volume: MetaTensor, geometry: Geometry, samples_per_voxel: float = DEFAULT_SAMPLES_PER_VOXEL
) -> torch.Tensor:
    """Ray integrals of linear attenuation through ``volume`` for one view.

    Args:
        volume: ``(1, X, Y, Z)`` MetaTensor of linear attenuation per mm, placed in the world by its
            ``.affine`` (RAS mm). The isocentre is the volume's centre.
        geometry: the view.
        samples_per_voxel: ray samples per voxel length along the longest ray.

    Returns:
        ``(rows, columns)`` tensor of dimensionless line integrals ``∫ μ dl`` (the negative log of
        the transmitted fraction), in ``volume``'s dtype and device. Differentiable w.r.t. ``volume``.

    Raises:
        GeometryError: if ``volume`` is not ``(1, X, Y, Z)`` or its affine is singular.
    """
    if volume.ndim != 4 or volume.shape[0] != 1:
        raise GeometryError(f"line_integrals: volume has shape {tuple(volume.shape)}; expected (1, X, Y, Z)")
    affine = volume.affine if isinstance(volume, MetaTensor) else None
    if affine is None:
        raise GeometryError("line_integrals: volume must be a MetaTensor carrying its affine")
    data = volume.as_tensor() if isinstance(volume, MetaTensor) else volume
    return project(data[None], torch.as_tensor(affine), [geometry], samples_per_voxel)[0, 0]


def project(
    volumes: torch.Tensor,
    affine: torch.Tensor,
    geometries: Sequence[Geometry],
    samples_per_voxel: float = DEFAULT_SAMPLES_PER_VOXEL,
) -> torch.Tensor:
    """Line integrals of a batch of volumes on a shared grid, for several views.

    Args:
        volumes: ``(B, 1, X, Y, Z)`` linear attenuation per mm (plain tensor or MetaTensor).
        affine: ``(4, 4)`` voxel -> world RAS affine shared by the batch.
        geometries: the views; all must have the same ``detector_shape``.
        samples_per_voxel: ray samples per voxel length along the longest ray (> 0).

    Returns:
        ``(B, V, rows, columns)`` line integrals in ``volumes``' dtype and device.

    Raises:
        GeometryError: for a wrong volume shape, a singular affine or mixed detector shapes.
        ConfigError: for ``samples_per_voxel <= 0`` or no geometry.
    """
    if volumes.ndim != 5 or volumes.shape[1] != 1:
        raise GeometryError(f"project: volumes have shape {tuple(volumes.shape)}; expected (B, 1, X, Y, Z)")
    if not geometries:
        raise ConfigError("project: no geometry given; expected at least one view")
    if not (samples_per_voxel > 0 and math.isfinite(samples_per_voxel)):
        raise ConfigError(f"project: samples_per_voxel={samples_per_voxel!r}; expected a finite number > 0")
    shapes = {g.detector_shape for g in geometries}
    if len(shapes) != 1:
        raise GeometryError(f"project: views have different detector shapes {sorted(shapes)}; expected one")
    affine64 = torch.as_tensor(affine).to(torch.float64).cpu()
    if affine64.shape != (4, 4) or abs(float(torch.linalg.det(affine64[:3, :3]))) < 1e-12:
        raise GeometryError(f"project: affine must be an invertible (4, 4) matrix, got {affine64.tolist()}")
    volumes = volumes.as_tensor() if isinstance(volumes, MetaTensor) else volumes
    spatial = tuple(volumes.shape[2:])
    iso = volume_isocentre(affine64, spatial)
    world_to_index = torch.linalg.inv(affine64)
    rows, cols = geometries[0].detector_shape
    out = []
    for geometry in geometries:  # each view its own sample count, so a view's DRR never depends on the others
        start, direction, length_mm, length_vox = _ray_segments(geometry, iso, world_to_index, spatial)
        n_samples = max(2, math.ceil(float(length_vox.max()) * samples_per_voxel))
        out.append(_march(volumes, start, direction, length_mm, n_samples))
    return torch.stack(out, dim=1).reshape(volumes.shape[0], len(geometries), rows, cols)


def _ray_segments(
    geometry: Geometry, iso: torch.Tensor, world_to_index: torch.Tensor, spatial: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clip every ray of ``geometry`` to the voxel index box ``[-1, n]``.

    Returns:
        ``(start (N, 3), direction (N, 3), length_mm (N,), length_vox (N,))`` in float64: the clipped
        segment ``start + t * direction`` for ``t`` in ``[0, 1]`` in voxel index coordinates, its
        length in mm and in voxels (zero for rays that miss the volume).
    """
    source, pixels = geometry.rays(iso)
    pixels = pixels.reshape(-1, 3)
    rot, shift = world_to_index[:3, :3], world_to_index[:3, 3]
    src_i = rot @ source + shift  # (3,)
    ray_i = pixels @ rot.T + shift - src_i  # (N, 3) voxel index coordinates
    lo = torch.full((3,), -1.0, dtype=torch.float64)
    hi = torch.tensor(spatial, dtype=torch.float64)
    safe = torch.where(ray_i.abs() < 1e-12, torch.full_like(ray_i, 1e-12), ray_i)
    ta, tb = (lo - src_i) / safe, (hi - src_i) / safe
    t0 = torch.minimum(ta, tb).amax(dim=1).clamp(0.0, 1.0)
    t1 = torch.maximum(ta, tb).amin(dim=1).clamp(0.0, 1.0)
    t1 = torch.maximum(t1, t0)
    span = (t1 - t0)[:, None]
    length_mm = (pixels - source).norm(dim=1) * span[:, 0]
    length_vox = ray_i.norm(dim=1) * span[:, 0]
    return src_i + t0[:, None] * ray_i, span * ray_i, length_mm, length_vox


def _march(
    volumes: torch.Tensor, start: torch.Tensor, direction: torch.Tensor, length_mm: torch.Tensor, n_samples: int
) -> torch.Tensor:
    """Midpoint-rule integral along the clipped segments; returns ``(B, N)``."""
    device, dtype = volumes.device, volumes.dtype
    batch = volumes.shape[0]
    spatial = torch.tensor(volumes.shape[2:], dtype=torch.float64)
    t = (torch.arange(n_samples, dtype=torch.float64) + 0.5) / n_samples
    # index i -> grid_sample coordinate (2 i + 1) / n - 1 (align_corners=False); grid order is (z, y, x)
    scale, offset = (2.0 / spatial).flip(0), (1.0 / spatial - 1.0).flip(0)
    start_g = (start.flip(1) * scale + offset).to(device=device, dtype=dtype)
    dir_g = (direction.flip(1) * scale).to(device=device, dtype=dtype)
    t = t.to(device=device, dtype=dtype)
    step = (length_mm / n_samples).to(device=device, dtype=dtype)
    chunk = max(1, _MAX_POINTS_PER_CHUNK // (n_samples * batch))
    parts = []
    for lo in range(0, start_g.shape[0], chunk):
        s, d = start_g[lo : lo + chunk], dir_g[lo : lo + chunk]
        grid = s[None, :, :] + t[:, None, None] * d[None, :, :]  # (n_samples, n_rays, 3)
        grid = grid[None, None].expand(batch, -1, -1, -1, -1)  # (B, 1, n_samples, n_rays, 3)
        samples = F.grid_sample(volumes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        parts.append(samples[:, 0, 0].sum(dim=1) * step[lo : lo + chunk])  # (B, n_rays)
    return torch.cat(parts, dim=1)
