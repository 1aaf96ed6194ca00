"""Real radiographs in: CR/DX DICOM and PNG/TIFF, mapped into the DRR domain of a :class:`Geometry`.

Reading (:func:`load_radiograph`) returns the stored pixels as displayed (attenuation bright):
MONOCHROME1, or a Presentation LUT Shape of ``INVERSE``, is inverted once (the DX IOD pairs
``INVERSE`` with MONOCHROME1 for the same inversion, so both together invert once). The detector
pixel spacing comes from, in order:

1. ``PixelSpacing`` (0028,0030), calibrated to the patient plane: detector spacing =
   ``PixelSpacing x EstimatedRadiographicMagnificationFactor`` (the factor is 1 when absent, noted);
2. ``ImagerPixelSpacing`` (0018,1164) when ``PixelSpacing`` is missing or zero: the detector
   spacing itself; the magnification factor, if present, is recorded;
3. none (PNG/TIFF, or neither tag usable): a warning, and :func:`to_detector_domain` then needs an
   explicit ``pixel_mm`` from the user, otherwise it raises.

:func:`to_detector_domain` resamples the image onto the geometry's detector pixels (centred; the
field is cropped or padded with the image's minimum), then applies the same per-image percentile
window as :func:`medxlate.xray.radiograph`, and returns a record of every step for provenance.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medxlate.errors import InputDataError
from medxlate.xray.attenuation import radiograph
from medxlate.xray.geometry import NAMED_VIEWS, Geometry

__all__ = ["Radiograph", "load_radiograph", "to_detector_domain"]

_LOG = logging.getLogger(__name__)
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass(frozen=True)
class Radiograph:
    """A radiograph as displayed (attenuation bright), with its detector spacing if known.

    Attributes:
        pixels: ``(rows, columns)`` float32 tensor of stored values (after rescale and inversion).
        detector_pixel_mm: ``(row, column)`` spacing at the detector plane, or ``None`` if unknown.
        view: DICOM View Position code (``"PA"``, ``"LL"``...) or ``None`` if not stated.
        record: how the file was read (format, inversion, spacing source, magnification, bits).
    """

    pixels: torch.Tensor
    detector_pixel_mm: tuple[float, float] | None
    view: str | None
    record: dict[str, Any] = field(default_factory=dict)


def load_radiograph(path: str | Path) -> Radiograph:
    """Read a CR/DX DICOM file or a PNG/TIFF image as a single-frame greyscale radiograph.

    Args:
        path: the file.

    Returns:
        The :class:`Radiograph`.

    Raises:
        InputDataError: for a missing or unreadable file, colour (RGB) or multi-frame data.
    """
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"radiograph {path}: no such file")
    if path.suffix.lower() in _IMAGE_SUFFIXES:
        return _load_image(path)
    return _load_dicom(path)


def _load_image(path: Path) -> Radiograph:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            frames = getattr(img, "n_frames", 1)
            if frames != 1:
                raise InputDataError(f"radiograph {path}: {frames} frames; expected a single image")
            mode = img.mode
            array = np.asarray(img)
    except (OSError, UnidentifiedImageError) as e:
        raise InputDataError(f"radiograph {path}: cannot be read as an image ({e})") from e
    if array.ndim == 3:
        colour = array[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise InputDataError(f"radiograph {path}: colour image (mode {mode}); expected greyscale")
        array = colour[..., 0]
    _LOG.warning("radiograph %s: an image file has no pixel spacing; pass pixel_mm when mapping it", path.name)
    record = {"format": path.suffix.lower().lstrip("."), "mode": mode, "inverted": False, "spacing_source": None}
    return Radiograph(torch.from_numpy(array.astype(np.float32)), None, None, record)


def _load_dicom(path: Path) -> Radiograph:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as e:
        raise InputDataError(f"radiograph {path}: not a readable DICOM file ({e})") from e
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if int(ds.get("SamplesPerPixel", 1)) != 1 or not photometric.startswith("MONOCHROME"):
        raise InputDataError(f"radiograph {path}: PhotometricInterpretation {photometric}; expected MONOCHROME1/2")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise InputDataError(f"radiograph {path}: NumberOfFrames = {frames}; expected a single frame")
    try:
        stored = ds.pixel_array.astype(np.float64)
    except Exception as e:  # any decoder failure is a bad input file
        raise InputDataError(f"radiograph {path}: pixel data cannot be decoded ({e})") from e
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    lut_shape = str(ds.get("PresentationLUTShape", "IDENTITY")).upper()
    invert = photometric == "MONOCHROME1" or lut_shape == "INVERSE"
    if invert:
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        stored = high + low - stored
    slope, intercept = float(ds.get("RescaleSlope", 1.0)), float(ds.get("RescaleIntercept", 0.0))
    spacing, spacing_record = _detector_spacing(ds, path)
    view = str(ds.get("ViewPosition", "") or "").upper() or None
    record = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "")),
        "photometric": photometric,
        "presentation_lut_shape": lut_shape,
        "inverted": invert,
        "bits_stored": bits,
        "rescale": [slope, intercept],
        **spacing_record,
    }
    return Radiograph(torch.from_numpy((stored * slope + intercept).astype(np.float32)), spacing, view, record)


def _pair(ds: Any, keyword: str) -> tuple[float, float] | None:
    value = ds.get(keyword)
    try:
        pair = (float(value[0]), float(value[1])) if value is not None and len(value) == 2 else None
    except (TypeError, ValueError):
        return None
    return pair if pair and all(math.isfinite(v) and v > 0 for v in pair) else None


def _detector_spacing(ds: Any, path: Path) -> tuple[tuple[float, float] | None, dict[str, Any]]:
    factor_value = ds.get("EstimatedRadiographicMagnificationFactor")
    factor = float(factor_value) if factor_value not in (None, "") and float(factor_value) > 0 else None
    record: dict[str, Any] = {"magnification_factor": factor}
    pixel, imager = _pair(ds, "PixelSpacing"), _pair(ds, "ImagerPixelSpacing")
    if pixel is not None:
        m = factor or 1.0
        record |= {"spacing_source": "PixelSpacing", "patient_pixel_mm": list(pixel)}
        if factor is None:
            record["note"] = "PixelSpacing without a magnification factor: taken as the detector spacing"
        return (pixel[0] * m, pixel[1] * m), record
    if imager is not None:
        record |= {"spacing_source": "ImagerPixelSpacing"}
        if factor is not None:
            record["patient_pixel_mm"] = [imager[0] / factor, imager[1] / factor]
        return imager, record
    _LOG.warning("radiograph %s: no usable PixelSpacing or ImagerPixelSpacing; pass pixel_mm explicitly", path.name)
    return None, record | {"spacing_source": None}


def to_detector_domain(
    image: Radiograph, geometry: Geometry, pixel_mm: float | tuple[float, float] | None = None
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Map a radiograph onto ``geometry``'s detector pixels and into the DRR intensity domain.

    Args:
        image: the loaded radiograph.
        geometry: the view the model was trained on (its detector shape and pixel spacing).
        pixel_mm: detector spacing to use instead of the file's (required when the file has none).

    Returns:
        ``(pixels (rows, columns) in [0, 1], record)``; the record lists the spacing used, the
        scale, crop/pad per side in source pixels and the intensity window.

    Raises:
        InputDataError: if no spacing is known and none is given, or the radiograph's stated view
            differs from the geometry's named view.
    """
    if pixel_mm is not None:
        spacing = (float(pixel_mm), float(pixel_mm)) if isinstance(pixel_mm, (int, float)) else tuple(pixel_mm)
    elif image.detector_pixel_mm is not None:
        spacing = image.detector_pixel_mm
    else:
        raise InputDataError(
            "radiograph has no usable pixel spacing (PixelSpacing, ImagerPixelSpacing); "
            "pass pixel_mm (mm per pixel; medxlate translate --pixel-mm)"
        )
    expected = geometry.view if isinstance(geometry.view, str) else None
    if image.view in NAMED_VIEWS and expected is not None and image.view != expected:
        raise InputDataError(f"radiograph ViewPosition is {image.view}; the model expects a {expected} view here")
    rows, cols = geometry.detector_shape
    src = image.pixels.to(torch.float32)
    scale = (geometry.pixel_mm[0] / spacing[0], geometry.pixel_mm[1] / spacing[1])  # source pixels per output
    # output pixel centre -> source index, centred on the image centre; then to grid_sample's [-1, 1]
    r = (torch.arange(rows) - (rows - 1) / 2) * scale[0] + (src.shape[0] - 1) / 2
    c = (torch.arange(cols) - (cols - 1) / 2) * scale[1] + (src.shape[1] - 1) / 2
    pool = (max(1, int(scale[0])), max(1, int(scale[1])))  # box-filter first when shrinking (anti-aliasing)
    pooled = F.avg_pool2d(src[None, None], pool, stride=pool, ceil_mode=True)
    gr = (2 * ((r + 0.5) / pool[0]) / pooled.shape[-2]) - 1
    gc = (2 * ((c + 0.5) / pool[1]) / pooled.shape[-1]) - 1
    grid = torch.stack(torch.meshgrid(gc, gr, indexing="xy"), dim=-1)[None]  # (1, rows, cols, 2) as (x, y)
    floor = float(src.min())
    out = F.grid_sample(pooled - floor, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0] + floor
    window, intensity = radiograph(out)
    half = ((rows * scale[0] - src.shape[0]) / 2, (cols * scale[1] - src.shape[1]) / 2)
    record = {
        "source_shape": list(src.shape),
        "pixel_mm_used": list(spacing),
        "scale_source_pixels_per_detector_pixel": list(scale),
        "pad_source_pixels_per_side": [max(0.0, h) for h in half],
        "crop_source_pixels_per_side": [max(0.0, -h) for h in half],
        "intensity": intensity,
        "read": image.record,
    }
    return window, record
