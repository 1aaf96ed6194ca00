"""X-ray -> CT at inference: radiographs -> the model's views -> a CT in HU on the documented grid.

The pieces the :class:`~medxlate.inference.Translator` (``lift`` strategy), ``medxlate evaluate`` and
training validation share:

* :func:`views_from_radiographs`: each radiograph file read (:func:`medxlate.xray.load_radiograph`),
  mapped onto its view's detector and into the DRR domain
  (:func:`medxlate.xray.to_detector_domain`), then to the model's ``[-1, 1]``; every problem is an
  :class:`~medxlate.errors.InputDataError` naming the file;
* :func:`predict_views`: ``(V, S, S)`` views -> ``(1, S, S, S)`` volume in model units;
* :func:`evaluate_lift_case`: one :class:`~medxlate.xray.cases.LiftCase` (a CT and its DRRs) ->
  the predicted CT in HU and its scores (3D SSIM/PSNR/MAE in HU against the CT, whole and in the
  body mask, and the re-projection agreement with the input views).

Output grid: a reconstructed CT is written on the strategy's grid
(:meth:`~medxlate.inference.LiftStrategy.grid_affine`): ``size``^3 voxels, isotropic spacing
``fov_mm / size``, axes along RAS (index ``x`` towards the patient's right, ``y`` anterior, ``z``
superior), centred on the world origin, which is the views' isocentre. A radiograph carries no 3D
position, so the origin is a convention, not the patient's scanner coordinates; the output's
provenance sidecar states it (:func:`output_grid_record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor

from medxlate.errors import CheckpointError, ConfigError, InputDataError, MedxlateError
from medxlate.inference.finite import check_finite_output
from medxlate.inference.runner import autocast_context
from medxlate.inference.strategy import LiftStrategy, build_inferer
from medxlate.metrics.volume import volume_metrics
from medxlate.transforms import Preprocessing

__all__ = [
    "LIFT_DESCRIPTION",
    "check_lift_checkpoint",
    "check_views",
    "describe_radiograph",
    "evaluate_lift_case",
    "output_grid_record",
    "predict_views",
    "views_from_radiographs",
]

LIFT_DESCRIPTION = "SYNTHETIC CT from radiographs by medxlate; not for diagnosis"


def _view_names(views: Sequence[str | float]) -> list[str | float]:
    return [v.upper() if isinstance(v, str) else float(v) for v in views]


def _views_text(strategy: LiftStrategy) -> str:
    names = ", ".join(str(v) for v in strategy.views)
    count = len(strategy.views)
    return f"{count} view{'s' if count != 1 else ''} ({names})"


def check_lift_checkpoint(path: str | Path, spec: dict[str, Any], task_geometry: str, strategy: LiftStrategy) -> None:
    """Refuse a ``lift`` checkpoint whose generator or task does not fit its strategy.

    Args:
        path: The checkpoint, for messages.
        spec: Its ``generator_spec``.
        task_geometry: Its task's geometry rule (``projection`` for X-ray -> CT).
        strategy: Its ``lift`` strategy.

    Raises:
        CheckpointError: the task is not a projection task, or the generator's ``views`` or
            ``image_size`` differ from the strategy's views and size.
    """
    if task_geometry != "projection":
        raise CheckpointError(
            f"{path}: inference strategy 'lift' (views -> volume) needs a task with geometry 'projection' "
            f"(X-ray -> CT), the checkpoint's task has '{task_geometry}'"
        )
    params = spec.get("params") if isinstance(spec.get("params"), dict) else {}
    views, size = params.get("views"), params.get("image_size")
    if not isinstance(views, (list, tuple)) or _view_names(views) != _view_names(strategy.views):
        raise CheckpointError(
            f"{path}: generator views {views!r} differ from the inference strategy's views "
            f"{list(strategy.views)}; expected the same views in the same order"
        )
    if size != strategy.size:
        raise CheckpointError(
            f"{path}: generator image_size {size!r} differs from the inference strategy's size {strategy.size}"
        )


def check_views(views: torch.Tensor, strategy: LiftStrategy, where: str = "views") -> torch.Tensor:
    """Check ``(V, S, S)`` views in the model's units against the strategy.

    Returns:
        The views as float32.

    Raises:
        InputDataError: for a wrong shape or view count, or NaN/inf values.
    """
    expected = (len(strategy.views), strategy.size, strategy.size)
    if not isinstance(views, torch.Tensor) or tuple(views.shape) != expected:
        found = tuple(views.shape) if isinstance(views, torch.Tensor) else type(views).__name__
        raise InputDataError(
            f"{where}: got {found}; the model expects {_views_text(strategy)} of {strategy.size} x {strategy.size} "
            f"pixels in [-1, 1], shape {expected}"
        )
    views = views.detach().to(torch.float32)
    bad = int((~torch.isfinite(views)).sum())
    if bad:
        raise InputDataError(f"{where}: {bad} of {views.numel()} pixels are NaN/inf; expected finite values")
    return views


def predict_views(
    generator: torch.nn.Module,
    views: torch.Tensor,
    strategy: LiftStrategy,
    device: torch.device,
    bf16: bool = True,
    label: str = "reconstruction",
) -> torch.Tensor:
    """Run a views -> volume generator (put in eval mode by the caller).

    Args:
        generator: ``(1, V, S, S)`` -> ``(1, 1, S, S, S)``.
        views: ``(V, S, S)`` views in ``[-1, 1]``, in the strategy's view order.
        strategy: The ``lift`` strategy.
        device: Where the network runs.
        bf16: bf16 autocast on CUDA.
        label: What to call the result in a non-finite error.

    Returns:
        ``(1, S, S, S)`` float32 volume in model units, on the CPU.

    Raises:
        InputDataError: for views of the wrong shape or holding NaN/inf.
        NonFiniteError: if the generator produces NaN/inf.
    """
    views = check_views(views, strategy)
    inferer = build_inferer(strategy)
    with torch.inference_mode(), autocast_context(device, bf16):
        output = inferer(views[None].to(device), generator)  # (1, V, S, S) -> (1, 1, S, S, S)
    output = output[0].float().cpu()
    check_finite_output(output, label)
    return output


def describe_radiograph(path: str | Path) -> dict[str, Any]:
    """Path, content SHA-256 and (DICOM) series facts of a radiograph file, read before any output.

    :func:`medxlate.io.provenance.describe_source`; a DICOM file whose header lacks what a series
    description needs (e.g. no SeriesInstanceUID) is still identified by its path and hash.
    """
    from medxlate.io.provenance import describe_source, sha256_file

    path = Path(path)
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "no such file"
        raise InputDataError(f"radiograph {path}: {kind}; expected one radiograph file (DICOM, PNG or TIFF)")
    try:
        return describe_source(path)
    except MedxlateError:
        return {"path": str(path.expanduser().resolve()), "kind": "file", "files": 1, "sha256": sha256_file(path)}


def views_from_radiographs(
    paths: Sequence[str | Path],
    strategy: LiftStrategy,
    pixel_mm: float | tuple[float, float] | None = None,
    force: bool = False,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Read radiographs, one per view in the strategy's order, into the model's ``(V, S, S)`` views.

    Args:
        paths: The radiograph files (CR/DX DICOM, PNG, TIFF), in the order of the model's views.
        strategy: The ``lift`` strategy (its views' geometries define each detector).
        pixel_mm: Detector pixel spacing (mm), one number or ``(row, column)``: needed for files that
            state none (PNG, TIFF, DICOM without a usable spacing); when given it is used for every
            file, instead of the files' own.
        force: translate files the domain checks refuse
            (:func:`medxlate.xray.radiograph_domain.check_radiograph`), with a warning each.

    Returns:
        ``(views in [-1, 1], records)``; one record per view: the view, the domain checks
        (``domain_checks``: measure, expected, found, verdict), what was read (format, inversion,
        spacing source...) and how it was mapped (spacing used, scale, crop/pad, window).

    Raises:
        InputDataError: naming the file, for a view count other than the model's, an unreadable,
            colour or multi-frame file, NaN/inf pixels, no usable or an implausible spacing and no
            ``pixel_mm``, or (unless ``force``) a file that is not a radiograph of the model's kind:
            not CR/DX, a localizer, a ViewPosition other than the one the model expects there, a
            constant image.
        ConfigError: for a ``pixel_mm`` that is not a detector spacing in mm
            (:data:`medxlate.xray.radiographs.PIXEL_MM_RANGE`).
    """
    from medxlate.xray.radiograph_domain import check_radiograph, enforce_checks
    from medxlate.xray.radiographs import load_radiograph, to_detector_domain

    _check_pixel_mm(pixel_mm)
    paths = [Path(p) for p in paths]
    if len(paths) != len(strategy.views):
        files = f"{len(paths)} file{'s' if len(paths) != 1 else ''}"
        raise InputDataError(
            f"model expects {_views_text(strategy)}, got {files}"
            + (f" ({', '.join(str(p) for p in paths)})" if paths else "")
            + "; give one radiograph per view, in that order"
        )
    views, records = [], []
    for path, geometry in zip(paths, strategy.geometries(), strict=True):
        image = load_radiograph(path)
        bad = int((~torch.isfinite(image.pixels)).sum())
        if bad:
            raise InputDataError(
                f"radiograph {path}: {bad} of {image.pixels.numel()} pixels are NaN/inf; expected finite values"
            )
        checks = check_radiograph(image, geometry)
        enforce_checks(checks, path, force)
        try:
            window, record = to_detector_domain(image, geometry, pixel_mm)
        except InputDataError as e:
            raise InputDataError(f"{path}: {e}") from e
        views.append(window * 2.0 - 1.0)
        domain_checks = [check.as_dict() for check in checks]
        records.append({"view": geometry.view, "domain_checks": domain_checks, "detector_domain": record})
    return torch.stack(views), records


def _check_pixel_mm(pixel_mm: float | tuple[float, float] | None) -> None:
    from medxlate.xray.radiographs import PIXEL_MM_RANGE

    low, high = PIXEL_MM_RANGE
    values = [pixel_mm] if isinstance(pixel_mm, (int, float)) else list(pixel_mm or [])
    if pixel_mm is not None and not (
        len(values) in (1, 2)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high for v in values)
    ):
        raise ConfigError(
            f"pixel_mm (--pixel-mm) {pixel_mm!r}: expected a detector pixel spacing from {low:g} to {high:g} mm "
            "(one number or a (row, column) pair)"
        )


def output_grid_record(strategy: LiftStrategy) -> dict[str, Any]:
    """What a reconstructed CT's voxel grid is, for its provenance sidecar (see the module docstring)."""
    return {
        "shape": [strategy.size] * 3,
        "spacing_mm": [strategy.spacing_mm] * 3,
        "orientation": "RAS",
        "centre": "world origin (0, 0, 0) = the views' isocentre; radiographs carry no 3D position",
        "affine_ras": strategy.grid_affine().tolist(),
    }


def evaluate_lift_case(
    generator: torch.nn.Module,
    case: Any,
    strategy: LiftStrategy,
    prep: Preprocessing,
    device: torch.device,
    bf16: bool = False,
    label: str = "case",
) -> tuple[MetaTensor, dict[str, float]]:
    """Reconstruct one case from its clean views and score it against its CT (put the generator in
    eval mode first).

    Args:
        generator: The views -> volume generator.
        case: A :class:`medxlate.xray.cases.LiftCase` made with ``strategy``'s geometries and grid.
        strategy: The ``lift`` strategy.
        prep: The preprocessing (its CT window maps the output to HU; its width is the data range).
        device: Where the network runs.
        bf16: bf16 autocast on CUDA.
        label: The case's name in a non-finite error.

    Returns:
        ``(predicted CT (1, S, S, S) in HU on the case's grid, metrics)``: ``ssim``, ``psnr``, ``mae``
        and their ``_body`` variants in HU against ``case.ct_hu`` (data range the window width),
        ``data_range``, ``reprojection_mae`` and ``reprojection_ssim``
        (:func:`medxlate.xray.cases.reprojection_agreement`).

    Raises:
        NonFiniteError: if the generator produces NaN/inf.
    """
    from medxlate.xray.cases import reprojection_agreement

    output = predict_views(generator, case.views, strategy, device, bf16, label=f"{label}: reconstruction")
    affine = torch.as_tensor(case.ct_hu.affine, dtype=torch.float64)
    predicted = MetaTensor(prep.model_to_target(output), affine=affine)
    real = case.ct_hu.as_tensor() if isinstance(case.ct_hu, MetaTensor) else case.ct_hu
    values = volume_metrics(predicted[0].as_tensor(), real[0].float(), case.mask[0], prep.target_data_range)
    values.update(reprojection_agreement(predicted.as_tensor(), case.views, affine, strategy.geometries()))
    return predicted, values
