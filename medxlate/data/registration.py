"""Put a target volume onto its source's voxel grid: optional rigid registration, then resampling.

SimpleITK does both (imported inside the functions: design habit 9). Volumes are ``MetaTensor``
(1, X, Y, Z) with a voxel -> RAS affine; ITK images live in LPS, so the first two rows of the affine
change sign on the way in (see :mod:`medxlate.io.sitk_formats`).

Registration (``method: rigid``, and the first step of ``deformable``): Euler3D transform, Mattes
mutual information, regular-step gradient descent scaled by physical shift, multi-resolution (shrink
+ smoothing in mm), random metric sampling with a fixed seed and a fixed thread count (also ITK's
global one, for the duration), so two runs give the same transform.
The transform maps points of the source (fixed) to the target (moving), which is what resampling
the target onto the source grid needs.

``method: deformable`` adds a B-spline on top of the rigid transform (:mod:`medxlate.data.deformable`).

The recorded ``value`` is ITK's Mattes metric, the *negative* mutual information (lower is better),
evaluated on all voxels (no sampling) after alignment; ``initial_value`` is the same before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from medxlate.config.prepare import RegistrationConfig
from medxlate.errors import GeometryError

__all__ = ["Alignment", "align", "resample_onto", "to_sitk"]

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS, its own inverse


@dataclass(frozen=True)
class Alignment:
    """A source -> target transform and what to record about it.

    Attributes:
        transform: SimpleITK transform mapping source (fixed) LPS points to target (moving) points.
        record: JSON-able summary: ``method``, ``metric`` ("mattes_mi") and ``value``; for
            ``rigid`` also ``initial_value`` (before registration), ``iterations``,
            ``translation_mm`` (displacement of the source's centre, RAS mm), ``rotation_deg``
            (total rotation angle) and ``matrix`` (4x4, source RAS mm -> target RAS mm); for
            ``deformable`` these describe the rigid step, and ``rigid_value`` (the metric after it),
            ``grid_spacing_mm``, ``mesh``, ``deformable_iterations``, ``displacement_mean_mm``,
            ``displacement_max_mm`` (of the B-spline part) and ``jacobian_min``/``jacobian_max`` are added.
    """

    transform: Any
    record: dict[str, Any]


def to_sitk(volume: MetaTensor | torch.Tensor, affine: Any = None) -> Any:
    """Convert a (1, X, Y, Z) volume with a voxel -> RAS affine into a float32 SimpleITK image.

    Args:
        volume: Single-channel volume (a ``MetaTensor`` brings its affine).
        affine: 4x4 voxel -> RAS affine, for plain tensors.

    Returns:
        ``SimpleITK.Image`` with spacing, direction and origin in LPS.

    Raises:
        GeometryError: More than one channel, or a singular affine.
    """
    import SimpleITK as sitk

    if volume.ndim != 4 or volume.shape[0] != 1:
        raise GeometryError(f"expected a single-channel volume (1, X, Y, Z), got shape {tuple(volume.shape)}")
    matrix = _affine(volume.affine if affine is None else affine)
    lps = _LPS @ matrix
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    if (spacing <= 0).any() or abs(np.linalg.det(lps[:3, :3])) < 1e-12:
        raise GeometryError(f"cannot register/resample a volume with a singular affine {matrix.tolist()}")
    array = torch.as_tensor(volume)[0].detach().cpu().numpy().astype(np.float32)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))  # ITK wants (z, y, x)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return image


def _affine(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _identity(fixed: Any) -> Any:
    import SimpleITK as sitk

    transform = sitk.Euler3DTransform()
    centre = np.asarray(fixed.GetSize(), dtype=np.float64) / 2.0 - 0.5
    transform.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint(centre.tolist()))
    return transform


def _initial(fixed: Any, moving: Any, initializer: str) -> Any:
    import SimpleITK as sitk

    if initializer == "none":
        return _identity(fixed)
    mode = {
        "geometry": sitk.CenteredTransformInitializerFilter.GEOMETRY,
        "moments": sitk.CenteredTransformInitializerFilter.MOMENTS,
    }[initializer]
    return sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(), mode)


def mattes_value(fixed: Any, moving: Any, transform: Any, bins: int) -> float:
    """ITK's Mattes metric (negative mutual information) of ``moving`` under ``transform``, all voxels.

    Args:
        fixed: SimpleITK image defining the sample points.
        moving: SimpleITK image sampled through ``transform``.
        transform: Fixed -> moving transform.
        bins: Histogram bins.

    Returns:
        The metric value (lower is better).
    """
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetInitialTransform(transform, inPlace=False)
    method.SetNumberOfThreads(1)  # a fixed summation order: the recorded value is reproducible
    return float(method.MetricEvaluate(fixed, moving))


def mattes_method(
    cfg: RegistrationConfig, sampling_fraction: float, shrink_factors: tuple[int, ...], sigmas_mm: tuple[float, ...]
) -> Any:
    """A SimpleITK registration on Mattes MI: seeded random sampling, linear interpolation, levels in mm.

    Args:
        cfg: Registration settings (``histogram_bins``, ``seed``, ``threads``).
        sampling_fraction: Fraction of fixed voxels sampled (with ``cfg.seed``).
        shrink_factors: Image shrink factor per level, coarse to fine.
        sigmas_mm: Gaussian smoothing per level, in mm.

    Returns:
        The ``ImageRegistrationMethod``; the caller sets the optimiser and the initial transform.
    """
    import SimpleITK as sitk

    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=cfg.histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(sampling_fraction, cfg.seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel(list(shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(sigmas_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    if cfg.threads is not None:
        method.SetNumberOfThreads(cfg.threads)
    return method


def execute(method: Any, fixed: Any, moving: Any, what: str) -> tuple[Any, int]:
    """Run a registration, counting iterations; a failure becomes a :class:`GeometryError` naming ``what``.

    Args:
        method: A configured ``ImageRegistrationMethod``.
        fixed: Fixed image.
        moving: Moving image.
        what: How the message names the registration (``"rigid"``, ``"deformable"``).

    Returns:
        The optimised transform and the number of iteration events.

    Raises:
        GeometryError: SimpleITK failed (e.g. too few samples overlap after a bad step).
    """
    import SimpleITK as sitk

    iterations = [0]
    method.AddCommand(sitk.sitkIterationEvent, lambda: iterations.__setitem__(0, iterations[0] + 1))
    try:
        transform = method.Execute(fixed, moving)
    except RuntimeError as e:
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise GeometryError(f"{what} registration failed: {detail}; check that the two series overlap") from e
    return transform, iterations[0]


def _register(fixed: Any, moving: Any, cfg: RegistrationConfig) -> tuple[Any, int]:
    method = mattes_method(cfg, cfg.sampling_fraction, cfg.shrink_factors, cfg.smoothing_sigmas_mm)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=cfg.learning_rate,
        minStep=cfg.min_step,
        numberOfIterations=cfg.iterations,
        relaxationFactor=0.5,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(_initial(fixed, moving, cfg.initializer), inPlace=False)
    return execute(method, fixed, moving, "rigid")


@contextmanager
def _global_threads(threads: int | None) -> Iterator[None]:
    """Set ITK's global default thread count for the block: parts of the registration (the B-spline
    metric's gradient) are summed by the global threader, not the registration's, and the summation
    order changes the last digits with the count (measured: two runs differed at 1e-17 without this)."""
    import SimpleITK as sitk

    if threads is None:
        yield
        return
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _matrix_ras(transform: Any) -> np.ndarray:
    """4x4 RAS matrix of an affine SimpleITK transform (sampled at the origin and unit points)."""
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)))
    lps = np.eye(4)
    for axis in range(3):
        unit = np.zeros(3)
        unit[axis] = 1.0
        lps[:3, axis] = np.asarray(transform.TransformPoint(unit.tolist())) - origin
    lps[:3, 3] = origin
    return _LPS @ lps @ _LPS


def _summary(transform: Any, fixed: Any) -> dict[str, Any]:
    matrix = _matrix_ras(transform)
    centre_index = np.asarray(fixed.GetSize(), dtype=np.float64) / 2.0 - 0.5
    centre = _LPS[:3, :3] @ np.asarray(fixed.TransformContinuousIndexToPhysicalPoint(centre_index.tolist()))
    moved = matrix[:3, :3] @ centre + matrix[:3, 3]
    cos_angle = np.clip((np.trace(matrix[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
    return {
        "translation_mm": [round(float(v), 4) for v in moved - centre],
        "rotation_deg": round(float(np.degrees(np.arccos(cos_angle))), 4),
        "matrix": [[round(float(v), 6) for v in row] for row in matrix],
    }


def align(source: MetaTensor, target: MetaTensor, cfg: RegistrationConfig) -> Alignment:
    """Find the source -> target transform (identity for ``method: none``) and record the metric.

    Args:
        source: Fixed volume (1, X, Y, Z), e.g. the CT.
        target: Moving volume (1, X', Y', Z'), e.g. the MR, on any grid.
        cfg: Registration settings.

    Returns:
        The alignment (transform and record, see :class:`Alignment`).

    Raises:
        GeometryError: Singular affines, or registration failed (no overlap).
    """
    fixed, moving = to_sitk(source), to_sitk(target)
    identity = _identity(fixed)
    initial_value = mattes_value(fixed, moving, identity, cfg.histogram_bins)
    record: dict[str, Any] = {"method": cfg.method, "metric": "mattes_mi", "value": round(initial_value, 6)}
    if cfg.method == "none":
        return Alignment(transform=identity, record=record)
    with _global_threads(cfg.threads):
        transform, iterations = _register(fixed, moving, cfg)
        record = {**record, "initial_value": round(initial_value, 6), "iterations": iterations}
        record.update(_summary(transform, fixed))
        if cfg.method == "deformable":
            from medxlate.data.deformable import register_bspline

            record["rigid_value"] = round(mattes_value(fixed, moving, transform, cfg.histogram_bins), 6)
            transform, deformable = register_bspline(fixed, moving, transform, cfg)
            record.update(deformable)
    record["value"] = round(mattes_value(fixed, moving, transform, cfg.histogram_bins), 6)
    return Alignment(transform=transform, record=record)


def resample_onto(
    reference: MetaTensor, volume: MetaTensor, transform: Any = None, *, label: bool = False, default: float = 0.0
) -> MetaTensor:
    """Resample ``volume`` onto ``reference``'s voxel grid (linear, or nearest for labels).

    Args:
        reference: Defines the output grid (shape and affine).
        volume: Volume to resample, on its own grid.
        transform: Reference -> volume point transform (from :func:`align`); ``None`` for identity.
        label: Nearest-neighbour interpolation (masks, label maps).
        default: Value outside ``volume``'s field of view.

    Returns:
        ``MetaTensor`` (1, X, Y, Z) float32 with ``reference``'s affine.
    """
    import SimpleITK as sitk

    fixed, moving = to_sitk(reference), to_sitk(volume)
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    resampled = sitk.Resample(
        moving, fixed, transform or sitk.Transform(3, sitk.sitkIdentity), interpolator, default, sitk.sitkFloat32
    )
    array = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)  # back to (X, Y, Z)
    return MetaTensor(
        torch.from_numpy(np.ascontiguousarray(array))[None], affine=torch.as_tensor(_affine(reference.affine))
    )


def same_grid(a: MetaTensor, b: MetaTensor, atol: float = 1e-3) -> bool:
    """Whether two volumes share shape and affine (within ``atol`` mm)."""
    return tuple(a.shape[1:]) == tuple(b.shape[1:]) and bool(
        np.allclose(_affine(a.affine), _affine(b.affine), atol=atol)
    )
