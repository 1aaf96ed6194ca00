"""An analytic, asymmetric torso sampled on any grid: CT (HU) and MR of the same anatomy.

Sampling the same anatomy on two grids, the second shifted by a known offset in world space, gives
a pair whose true rigid transform is known (source point x appears at x + offset in the target).
"""

from __future__ import annotations

import numpy as np


def anatomy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CT (HU) and MR values at RAS points (..., 3) in mm; torso about 84 x 64 x 80 mm."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    ct, mr = np.full(x.shape, -1000.0), np.zeros(x.shape)
    body = ((x / 42) ** 2 + (y / 32) ** 2 < 1.0) & (np.abs(z) < 40)
    ct[body], mr[body] = -100.0, 900.0
    inner = ((x / 36) ** 2 + (y / 26) ** 2 < 1.0) & body
    ct[inner], mr[inner] = 40.0, 500.0
    lungs = (((x - 16) / 12) ** 2 + (y / 14) ** 2 + ((z - 6) / 22) ** 2 < 1.0) | (
        ((x + 14) / 9) ** 2 + ((y - 3) / 11) ** 2 + ((z - 2) / 16) ** 2 < 1.0
    )
    ct[lungs], mr[lungs] = -800.0, 40.0
    spine = ((x / 6) ** 2 + ((y + 20) / 6) ** 2 < 1.0) & body
    ct[spine], mr[spine] = 700.0, 200.0
    organ = ((x + 5) / 8) ** 2 + ((y - 14) / 7) ** 2 + ((z + 12) / 9) ** 2 < 1.0
    ct[organ], mr[organ] = 80.0, 1500.0
    return ct, mr


def grid_points(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """RAS coordinates (X, Y, Z, 3) of every voxel of a grid."""
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).astype(np.float64)
    return index @ affine[:3, :3].T + affine[:3, 3]


def ct_on_grid(shape: tuple[int, int, int], affine: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """CT (HU, int16) of the anatomy displaced by ``offset`` (RAS mm) sampled on a grid."""
    points = grid_points(shape, affine) - (np.zeros(3) if offset is None else offset)
    return np.rint(anatomy(points)[0]).astype(np.int16)


def mr_on_grid(shape: tuple[int, int, int], affine: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """MR (float32) of the anatomy displaced by ``offset`` (RAS mm) sampled on a grid."""
    points = grid_points(shape, affine) - (np.zeros(3) if offset is None else offset)
    return anatomy(points)[1].astype(np.float32)


CT_SHAPE = (32, 32, 16)
MR_SHAPE = (29, 29, 15)
MR_OFFSET = np.array([3.0, -2.0, 4.0])


def ct_affine() -> np.ndarray:
    """LAS, 3 x 3 x 4 mm, covering the torso."""
    affine = np.diag([-3.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [48.0, -48.0, -32.0]
    return affine


def mr_affine() -> np.ndarray:
    """RAS, 3.5 x 3.5 x 4.5 mm: another grid than the CT's."""
    affine = np.diag([3.5, 3.5, 4.5, 1.0])
    affine[:3, 3] = [-50.0, -50.0, -30.0]
    return affine


# A textured pair for deformable registration: smooth structure everywhere (no flat region, so that
# a local deformation is identifiable), MR a decreasing function of the same anatomy, displaced by a
# known smooth map: the MR at point y shows the anatomy at ``warp_back(y)``.
DEFORM_SHAPE = (40, 32, 24)
DEFORM_SHIFT = np.array([2.0, -1.5, 1.0])  # rigid part, RAS mm
DEFORM_BUMP = np.array([6.0, -5.0, 3.0])  # local part: Gaussian bump (sigma 22 mm) of this amplitude, mm


def deform_affine() -> np.ndarray:
    """LAS, 2.5 x 2.5 x 3 mm."""
    affine = np.diag([-2.5, 2.5, 3.0, 1.0])
    affine[:3, 3] = [50.0, -40.0, -36.0]
    return affine


def textured(points: np.ndarray) -> np.ndarray:
    """Sum of 60 seeded Gaussian blobs (sigma 6-12 mm) covering the deform grid, values ~0-2."""
    rng = np.random.default_rng(0)
    corners = grid_points((2, 2, 2), deform_affine() @ np.diag([*(np.array(DEFORM_SHAPE) - 1), 1.0]))
    low, high = corners.reshape(-1, 3).min(0), corners.reshape(-1, 3).max(0)
    centres, widths = rng.uniform(low - 10, high + 10, (60, 3)), rng.uniform(6, 12, 60)
    weights = rng.uniform(0.5, 1.0, 60)
    out = np.zeros(points.shape[:-1])
    for centre, width, weight in zip(centres, widths, weights, strict=True):
        out += weight * np.exp(-((points - centre) ** 2).sum(-1) / (2 * width**2))
    return out


def warp_back(points: np.ndarray) -> np.ndarray:
    """Where the anatomy shown at ``points`` of the deformed MR really is (smooth, invertible)."""
    bump = np.exp(-((points - np.array([5.0, 0.0, 0.0])) ** 2).sum(-1, keepdims=True) / (2 * 22.0**2))
    return points - DEFORM_SHIFT - DEFORM_BUMP * bump


def deformed_pair() -> tuple[np.ndarray, np.ndarray]:
    """CT-like (float32) and deformed MR-like (float32) volumes on the deform grid."""
    points = grid_points(DEFORM_SHAPE, deform_affine())
    ct = 1000.0 * textured(points) - 500.0
    mr = 1500.0 - 800.0 * textured(warp_back(points))
    return ct.astype(np.float32), mr.astype(np.float32)
