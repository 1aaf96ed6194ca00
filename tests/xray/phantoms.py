"""Analytic phantoms for projector tests: anti-aliased voxelisation and exact chord lengths."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor


def voxel_centres(affine: np.ndarray, shape: tuple[int, int, int], sub: int = 1) -> np.ndarray:
    """World positions (..., 3) of ``sub**3`` sub-voxel points per voxel, shape (X, Y, Z, sub**3, 3)."""
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    idx = np.stack(np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij"), axis=-1)
    off = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    pts = idx[..., None, :] + off  # (X, Y, Z, S, 3)
    return pts @ affine[:3, :3].T + affine[:3, 3]


def sphere_volume(affine: np.ndarray, shape: tuple[int, int, int], centre, radius: float, mu: float) -> MetaTensor:
    """Uniform sphere (attenuation ``mu`` per mm), partial volumes from 3**3 sub-samples per voxel."""
    pts = voxel_centres(affine, shape, sub=3)
    inside = (np.linalg.norm(pts - np.asarray(centre, float), axis=-1) <= radius).mean(axis=-1)
    return MetaTensor(torch.from_numpy(mu * inside)[None], affine=torch.from_numpy(affine))


def cylinder_volume(affine, shape, centre, radius: float, half_height: float, mu: float) -> MetaTensor:
    """Uniform cylinder along the world z (superior) axis."""
    pts = voxel_centres(affine, shape, sub=3) - np.asarray(centre, float)
    inside = ((np.hypot(pts[..., 0], pts[..., 1]) <= radius) & (np.abs(pts[..., 2]) <= half_height)).mean(axis=-1)
    return MetaTensor(torch.from_numpy(mu * inside)[None], affine=torch.from_numpy(affine))


def sphere_chords(source: np.ndarray, pixels: np.ndarray, centre, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact chord length (mm) of each ray source -> pixel through a sphere, and the ray's distance to its centre."""
    u = pixels - source
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    w = np.asarray(centre, float) - source
    d2 = (w * w).sum() - (u @ w) ** 2
    return 2.0 * np.sqrt(np.clip(radius**2 - d2, 0.0, None)), np.sqrt(np.clip(d2, 0.0, None))


def cylinder_chords(source: np.ndarray, pixels: np.ndarray, centre, radius: float, half_height: float) -> np.ndarray:
    """Exact chord length (mm) of each ray through a finite cylinder along z (infinite ray)."""
    s = source - np.asarray(centre, float)
    u = pixels - source
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    a = u[..., 0] ** 2 + u[..., 1] ** 2
    b = 2 * (s[0] * u[..., 0] + s[1] * u[..., 1])
    c = s[0] ** 2 + s[1] ** 2 - radius**2
    disc = np.clip(b * b - 4 * a * c, 0.0, None)
    t0, t1 = (-b - np.sqrt(disc)) / (2 * a), (-b + np.sqrt(disc)) / (2 * a)
    uz = np.where(np.abs(u[..., 2]) < 1e-12, 1e-12, u[..., 2])
    z0, z1 = (-half_height - s[2]) / uz, (half_height - s[2]) / uz
    lo = np.maximum(t0, np.minimum(z0, z1))
    hi = np.minimum(t1, np.maximum(z0, z1))
    return np.clip(hi - lo, 0.0, None)


def pa_rays(
    iso: np.ndarray, sdd: float, sad: float, shape: tuple[int, int], pixel: float
) -> tuple[np.ndarray, np.ndarray]:
    """PA geometry written out independently: source posterior, patient's left on the image's right."""
    rows, cols = shape
    source = iso + np.array([0.0, -sad, 0.0])
    r = (np.arange(rows) - (rows - 1) / 2) * pixel
    c = (np.arange(cols) - (cols - 1) / 2) * pixel
    pixels = np.zeros((rows, cols, 3))
    pixels[..., 0] = iso[0] - c[None, :]  # column increases towards the patient's left (-x in RAS)
    pixels[..., 1] = iso[1] + (sdd - sad)
    pixels[..., 2] = iso[2] - r[:, None]  # row increases towards inferior
    return source, pixels


def ll_rays(
    iso: np.ndarray, sdd: float, sad: float, shape: tuple[int, int], pixel: float
) -> tuple[np.ndarray, np.ndarray]:
    """Left lateral written out: source on the patient's right, anterior on the image's left."""
    rows, cols = shape
    source = iso + np.array([sad, 0.0, 0.0])
    r = (np.arange(rows) - (rows - 1) / 2) * pixel
    c = (np.arange(cols) - (cols - 1) / 2) * pixel
    pixels = np.zeros((rows, cols, 3))
    pixels[..., 0] = iso[0] - (sdd - sad)
    pixels[..., 1] = iso[1] - c[None, :]  # column increases towards posterior
    pixels[..., 2] = iso[2] - r[:, None]
    return source, pixels
