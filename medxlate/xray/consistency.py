"""Projection consistency: DRRs of a predicted CT, rendered with the input views' geometry, against the views."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medxlate.xray.attenuation import MU_WATER_PER_MM, hu_to_mu, radiograph
from medxlate.xray.geometry import Geometry
from medxlate.xray.projector import DEFAULT_SAMPLES_PER_VOXEL, project

__all__ = ["projection_consistency_loss", "views_from_hu"]


def views_from_hu(
    hu: torch.Tensor,
    affine: torch.Tensor,
    geometries: Sequence[Geometry],
    mu_water: float = MU_WATER_PER_MM,
    samples_per_voxel: float = DEFAULT_SAMPLES_PER_VOXEL,
) -> torch.Tensor:
    """Render CT volumes in HU as processed radiographs in ``[-1, 1]`` (the model's view domain).

    Args:
        hu: ``(B, 1, X, Y, Z)`` CT in HU on a grid shared by the batch.
        affine: ``(4, 4)`` voxel -> world RAS affine of that grid.
        geometries: the views.
        mu_water: water attenuation per mm (the energy assumption of :func:`hu_to_mu`).
        samples_per_voxel: projector sampling.

    Returns:
        ``(B, V, rows, columns)``: :func:`radiograph`'s per-image window, mapped to ``[-1, 1]``.
        Differentiable with respect to ``hu``.
    """
    line = project(hu_to_mu(hu, mu_water), affine, geometries, samples_per_voxel)
    image, _ = radiograph(line)
    return 2.0 * image - 1.0


def projection_consistency_loss(
    predicted_hu: torch.Tensor,
    views: torch.Tensor,
    affine: torch.Tensor,
    geometries: Sequence[Geometry],
    mu_water: float = MU_WATER_PER_MM,
    samples_per_voxel: float = DEFAULT_SAMPLES_PER_VOXEL,
) -> torch.Tensor:
    """Mean absolute difference between DRRs of the predicted CT and the input views.

    Args:
        predicted_hu: ``(B, 1, X, Y, Z)`` predicted CT in HU (denormalise the generator's output first).
        views: ``(B, V, rows, columns)`` input views in ``[-1, 1]`` (rendered by :func:`views_from_hu`
            for DRR training data, or mapped by :func:`medxlate.xray.to_detector_domain` then
            ``2 x - 1`` for real radiographs).
        affine: ``(4, 4)`` affine of the predicted grid.
        geometries: the views' geometries, in the order of ``views``' second axis.
        mu_water: water attenuation per mm.
        samples_per_voxel: projector sampling.

    Returns:
        Scalar loss, differentiable with respect to ``predicted_hu``.
    """
    rendered = views_from_hu(predicted_hu, affine, geometries, mu_water, samples_per_voxel)
    return (rendered - views.to(rendered.dtype)).abs().mean()
