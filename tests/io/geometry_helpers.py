"""Geometry helpers for the io tests: oblique directions and SimpleITK's view of an image in RAS."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def rotation(deg_x: float, deg_y: float, deg_z: float = 0.0) -> np.ndarray:
    """Rotation matrix Rz @ Ry @ Rx (angles in degrees); its columns are oblique unit axes."""
    ax, ay, az = np.deg2rad([deg_x, deg_y, deg_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def sitk_affine_ras(image: sitk.Image) -> torch.Tensor:
    """4x4 RAS affine of a 3D SimpleITK image, from its direction, spacing and origin."""
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    return torch.as_tensor(LPS_TO_RAS @ lps)


def sitk_world_ras(image: sitk.Image, indices: list[tuple[int, int, int]]) -> torch.Tensor:
    """RAS world coordinates (N, 3) of voxel indices, computed by SimpleITK itself (LPS, then x/y flipped)."""
    points = [image.TransformIndexToPhysicalPoint(tuple(int(v) for v in idx)) for idx in indices]
    return torch.as_tensor(np.asarray(points) * np.array([-1.0, -1.0, 1.0]))


def affine_world(affine: torch.Tensor, indices: list[tuple[int, int, int]]) -> torch.Tensor:
    """World coordinates (N, 3) of voxel indices through a 4x4 affine."""
    homogeneous = torch.cat([torch.as_tensor(indices, dtype=torch.float64), torch.ones(len(indices), 1)], dim=1)
    return (homogeneous @ affine.to(torch.float64).T)[:, :3]


def sitk_xyz(image: sitk.Image) -> torch.Tensor:
    """SimpleITK pixels as (X, Y, Z) float64 (its arrays are (Z, Y, X))."""
    return torch.as_tensor(sitk.GetArrayFromImage(image).astype(np.float64).transpose(2, 1, 0).copy())


CORNERS = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 4, 2), (4, 5, 6)]
