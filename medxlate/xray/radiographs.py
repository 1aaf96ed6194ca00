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

A spacing (from the file or given) outside :data:`PIXEL_MM_RANGE` is refused: real detectors have
0.05-1 mm pixels, downsampled exports and DRRs on a coarse model grid a few mm (the CPU demo's
10.5 mm). A malformed ``EstimatedRadiographicMagnificationFactor`` is refused, naming the tag. An
image of more than :data:`MAX_PIXELS` pixels is refused from its header, before decoding (a 13500 x
13500 PNG, or a DICOM file claiming that many rows and columns, is not a radiograph). A palette
image (PNG mode ``P``) is read as displayed, its palette applied; a palette with colour entries is
refused like any colour image. Whether the file is a radiograph of the model's kind at all
(modality, localizer, body part, view, blank) is :mod:`medxlate.xray.radiograph_domain`'s job.

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

from medxlate.errors import ConfigError, InputDataError
from medxlate.xray.attenuation import radiograph
from medxlate.xray.geometry import Geometry

__all__ = ["MAX_PIXELS", "PIXEL_MM_RANGE", "Radiograph", "load_radiograph", "to_detector_domain"]

_LOG = logging.getLogger(__name__)
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
PIXEL_MM_RANGE = (0.01, 20.0)  # plausible detector pixel spacing (mm), inclusive
MAX_PIXELS = 8192 * 8192  # the largest radiograph read; a 43 cm detector at 0.1 mm is 4300 x 4300


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


def _check_size(path: Path, rows: int, columns: int) -> None:
    if rows * columns > MAX_PIXELS:
        raise InputDataError(
            f"radiograph {path}: {rows} x {columns} pixels; expected at most {MAX_PIXELS:,} "
            f"({math.isqrt(MAX_PIXELS)} x {math.isqrt(MAX_PIXELS)})"
        )


def _load_image(path: Path) -> Radiograph:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # PIL warns above its own limit; ours (MAX_PIXELS) is lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            _check_size(path, img.height, img.width)
            frames = getattr(img, "n_frames", 1)
            if frames != 1:
                raise InputDataError(f"radiograph {path}: {frames} frames; expected a single image")
            mode = img.mode
            # a palette image as displayed: indices mean nothing without their palette
            array = np.asarray(img.convert("RGB") if mode in ("P", "PA") else img)
    except Image.DecompressionBombError as e:
        found = str(e).rstrip(".")
        raise InputDataError(f"radiograph {path}: too many pixels ({found}); expected at most {MAX_PIXELS:,}") from e
    except (OSError, UnidentifiedImageError) as e:
        raise InputDataError(f"radiograph {path}: cannot be read as an image ({e})") from e
    if array.ndim == 3:
        colour = array[..., :3] if array.shape[-1] >= 3 else array[..., :1]  # alpha dropped (LA: grey only)
        if any(not np.array_equal(colour[..., 0], colour[..., i]) for i in range(1, colour.shape[-1])):
            what = "palette image with colour entries" if mode in ("P", "PA") else "colour image"
            raise InputDataError(f"radiograph {path}: {what} (mode {mode}); expected greyscale")
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
    _check_size(path, int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0))
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
    slope, intercept = _decimal(ds, "RescaleSlope", path, 1.0), _decimal(ds, "RescaleIntercept", path, 0.0)
    spacing, spacing_record = _detector_spacing(ds, path)
    view = str(ds.get("ViewPosition", "") or "").upper() or None
    image_type = ds.get("ImageType")
    record = {
        "format": "dicom",
        "modality": str(ds.get("Modality", "")),
        "image_type": [image_type] if isinstance(image_type, str) else [str(v) for v in image_type or []],
        "body_part": str(ds.get("BodyPartExamined", "") or ""),
        "photometric": photometric,
        "presentation_lut_shape": lut_shape,
        "inverted": invert,
        "bits_stored": bits,
        "rescale": [slope, intercept],
        **spacing_record,
    }
    return Radiograph(torch.from_numpy((stored * slope + intercept).astype(np.float32)), spacing, view, record)


def _decimal(ds: Any, keyword: str, path: Path, default: float | None, positive: bool = False) -> float | None:
    """A single-valued decimal (DS) tag as a finite float, ``default`` when absent or empty.

    Raises:
        InputDataError: naming the file and tag, for a value that is not one finite decimal number
            (or, with ``positive``, not above 0).
    """
    if keyword not in ds:
        return default
    raw = ds.get_item(keyword).value  # as stored: a malformed DS would raise on conversion
    text = (raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)).strip(" \x00")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError as e:
        raise InputDataError(f"radiograph {path}: {keyword} {text!r}; expected one decimal number") from e
    if not math.isfinite(value) or (positive and value <= 0):
        what = "a positive" if positive else "a finite"
        raise InputDataError(f"radiograph {path}: {keyword} {text!r}; expected {what} decimal number")
    return value


def _pair(ds: Any, keyword: str) -> tuple[float, float] | None:
    try:
        value = ds.get(keyword)
        pair = (float(value[0]), float(value[1])) if value is not None and len(value) == 2 else None
    except (TypeError, ValueError):
        return None
    return pair if pair and all(math.isfinite(v) and v > 0 for v in pair) else None


def _detector_spacing(ds: Any, path: Path) -> tuple[tuple[float, float] | None, dict[str, Any]]:
    pixel, imager = _pair(ds, "PixelSpacing"), _pair(ds, "ImagerPixelSpacing")
    try:
        factor = _decimal(ds, "EstimatedRadiographicMagnificationFactor", path, None, positive=True)
    except InputDataError:
        if pixel is not None:  # it scales PixelSpacing to the detector: needed
            raise
        _LOG.warning("radiograph %s: malformed EstimatedRadiographicMagnificationFactor ignored", path.name)
        factor = None  # without PixelSpacing it would only be recorded
    record: dict[str, Any] = {"magnification_factor": factor}
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
        InputDataError: if no spacing is known and none is given, or the spacing used lies outside
            :data:`PIXEL_MM_RANGE` (a ``pixel_mm`` given there is a :class:`~medxlate.errors.ConfigError`).

    Whether the radiograph is of the model's kind and view is checked before, by
    :func:`medxlate.xray.radiograph_domain.check_radiograph`.
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
    low, high = PIXEL_MM_RANGE
    if not all(low <= float(s) <= high for s in spacing):
        where = "pixel_mm (--pixel-mm)" if pixel_mm is not None else f"{image.record.get('spacing_source')}"
        error = ConfigError if pixel_mm is not None else InputDataError
        found = ", ".join(f"{float(s):g}" for s in spacing)
        raise error(f"{where} {found} mm; expected a detector pixel spacing from {low:g} to {high:g} mm")
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
