"""B-spline (deformable) registration on top of a rigid transform (``registration.method: deformable``).

SimpleITK (imported inside the functions: design habit 9): a cubic ``BSplineTransform`` over the
source (fixed) image with control points every ``grid_spacing_mm``, optimised with L-BFGS-B on Mattes
mutual information, multi-resolution in the images (shrink + smoothing in mm; the mesh stays the same:
refining it per level with a line-search gradient descent was measured slower and less accurate on the
misaligned sample), random metric sampling with the registration's seed and a fixed thread count, so
two runs give the same transform. The rigid
transform is the moving initial transform: the result maps source points through the B-spline first,
then the rigid transform, into the target (moving) image.

A result that folds (a non-positive Jacobian determinant somewhere on the source grid: no longer
invertible, physically impossible) is refused with :class:`~medxlate.errors.GeometryError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medxlate.config.prepare import RegistrationConfig
from medxlate.data.registration import execute, mattes_method
from medxlate.errors import GeometryError

__all__ = ["register_bspline"]


def _mesh(fixed: Any, spacing_mm: float) -> list[int]:
    """Control-point mesh size per axis for a given spacing over the image's physical extent."""
    extent = np.asarray(fixed.GetSize(), dtype=np.float64) * np.asarray(fixed.GetSpacing())
    return [max(1, round(float(e) / spacing_mm)) for e in extent]


def _displacement_summary(bspline: Any, fixed: Any) -> dict[str, float]:
    """Mean/max B-spline displacement (mm) and the Jacobian determinant range over the source grid."""
    import SimpleITK as sitk

    field = sitk.TransformToDisplacementField(
        bspline, sitk.sitkVectorFloat64, fixed.GetSize(), fixed.GetOrigin(), fixed.GetSpacing(), fixed.GetDirection()
    )
    array = sitk.GetArrayViewFromImage(field)  # (Z, Y, X, 3), LPS mm
    grads = np.stack([np.stack(np.gradient(array[..., c]), axis=-1) for c in range(3)], axis=-2)  # d u_c / d (k, j, i)
    index_to_lps = np.asarray(fixed.GetDirection()).reshape(3, 3) * np.asarray(fixed.GetSpacing())
    # ITK's DisplacementFieldJacobianDeterminant ignores the direction (a flip inverts the result): chain rule here
    jacobian = np.linalg.det(np.eye(3) + grads[..., ::-1] @ np.linalg.inv(index_to_lps))
    magnitude = np.linalg.norm(array, axis=-1)
    return {
        "displacement_mean_mm": round(float(magnitude.mean()), 4),
        "displacement_max_mm": round(float(magnitude.max()), 4),
        "jacobian_min": round(float(jacobian.min()), 4),
        "jacobian_max": round(float(jacobian.max()), 4),
    }


def register_bspline(fixed: Any, moving: Any, rigid: Any, cfg: RegistrationConfig) -> tuple[Any, dict[str, Any]]:
    """Optimise a B-spline on top of ``rigid`` (see the module docstring).

    Args:
        fixed: Source image (SimpleITK, LPS).
        moving: Target image (SimpleITK, LPS).
        rigid: Source -> target rigid transform from the rigid step.
        cfg: Registration settings (``cfg.deformable`` and the shared seed, bins, threads).

    Returns:
        The composite source -> target transform (B-spline, then rigid) and a JSON-able record
        (``grid_spacing_mm``, ``mesh``, ``deformable_iterations``, displacement and Jacobian summary).

    Raises:
        GeometryError: The optimiser failed (e.g. too few overlapping samples) or the result folds.
    """
    import SimpleITK as sitk

    step = cfg.deformable
    mesh = _mesh(fixed, step.grid_spacing_mm)
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, 3)
    method = mattes_method(cfg, step.sampling_fraction, step.shrink_factors, step.smoothing_sigmas_mm)
    method.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5,
        numberOfIterations=step.iterations,
        maximumNumberOfCorrections=5,
        maximumNumberOfFunctionEvaluations=1000,
        costFunctionConvergenceFactor=1e7,
    )
    method.SetMovingInitialTransform(rigid)
    method.SetInitialTransform(bspline, inPlace=True)
    optimised, iterations = execute(method, fixed, moving, "deformable")
    optimised = sitk.BSplineTransform(optimised) if not isinstance(optimised, sitk.BSplineTransform) else optimised
    summary = _displacement_summary(optimised, fixed)
    if summary["jacobian_min"] <= 0.0:
        raise GeometryError(
            f"deformable registration folded the image (Jacobian determinant down to {summary['jacobian_min']}, "
            f"expected > 0): registration.deformable.grid_spacing_mm {cfg.deformable.grid_spacing_mm} is too fine "
            "for these images; raise it or use method: rigid"
        )
    record = {
        "grid_spacing_mm": cfg.deformable.grid_spacing_mm,
        "mesh": mesh,
        "deformable_iterations": iterations,
        **summary,
    }
    return sitk.CompositeTransform([rigid, optimised]), record
