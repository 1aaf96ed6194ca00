"""DICOM series reading with pydicom: discovery, grouping, geometric sorting, rescale, RAS affine.

Why not MONAI's ``PydicomReader``? It was checked (MONAI 1.6.1) against SimpleITK on an oblique,
shuffled synthetic series. It applies RescaleSlope/Intercept per slice and builds a correct oblique
affine from the first/last ImagePositionPatient, but it

* orders slices by InstanceNumber, not by position along the slice normal (wrong voxels and affine
  when InstanceNumber is not monotonic in position; slices without InstanceNumber are dropped);
* stacks every DICOM file of a folder, mixing several series silently;
* does not check that slices are equally spaced, share an orientation and a size;
* gives a single slice the third axis (0, 0, 1) instead of the slice normal.

Those are correctness problems, so this module reads series itself (headers first, pixels last), and
stays small. Geometry follows ITK/SimpleITK: voxel index ``(i, j, k)`` = (column, row, slice), the
slice axis points from the first to the last slice in increasing projection on
``normal = row_dir x col_dir``; the affine is converted from DICOM LPS to RAS (MONAI's convention).

No identifier (patient fields, UIDs) is ever put into messages or metadata.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.utils import orientation_ras_lps

from medxlate.errors import GeometryError, InputDataError

__all__ = ["DicomVolume", "find_dicom_files", "read_dicom_file", "read_dicom_folder", "read_dicom_series"]

_ORIENTATION_ATOL = 1e-4  # direction cosines: slices of one volume share their orientation
_POSITION_RTOL = 0.05  # a slice may sit at most 5% of the slice spacing off the regular grid
_POSITION_ATOL_MM = 1e-3  # plus rounding of ImagePositionPatient strings


@dataclass(frozen=True)
class DicomVolume:
    """A DICOM volume in physical units.

    Attributes:
        array: Values after the modality LUT (RescaleSlope/Intercept), float64, shaped (X, Y, Z).
        affine: 4x4 float64, voxel index -> RAS world millimetres.
        meta: Non-identifying header facts: ``modality``, ``series_description``,
            ``photometric_interpretation``.
    """

    array: np.ndarray
    affine: np.ndarray
    meta: dict[str, Any]


def _pydicom() -> Any:
    import pydicom  # local: keeps `import medxlate.io` light

    return pydicom


def find_dicom_files(folder: Path) -> list[Path]:
    """List the DICOM Part-10 files directly inside ``folder`` (not recursive, hidden files skipped).

    Args:
        folder: A folder.

    Returns:
        Sorted paths of files with the ``DICM`` preamble (DICOMDIR index files excluded).
    """
    is_dicom = _pydicom().misc.is_dicom
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR" and is_dicom(p)
    )


def _read(path: Path, *, pixels: bool) -> Any:
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError) as e:
        raise InputDataError(f"cannot read DICOM file {path}: {e}; expected a valid DICOM Part-10 file") from e


def _describe_series(headers: Sequence[Any]) -> str:
    first = headers[0]
    description = str(first.get("SeriesDescription", "") or "no SeriesDescription")
    return f"'{description}' ({first.get('Modality', 'unknown modality')}, {len(headers)} files)"


def read_dicom_folder(folder: str | Path) -> DicomVolume:
    """Read the single DICOM series held by ``folder``.

    Args:
        folder: A folder whose DICOM files all belong to one series (other files are ignored).

    Returns:
        The volume, see :class:`DicomVolume`.

    Raises:
        InputDataError: No DICOM file, several series, or unreadable files.
        GeometryError: Inconsistent slice geometry (see :func:`read_dicom_series`).
    """
    folder = Path(folder)
    files = find_dicom_files(folder)
    if not files:
        entries = list(folder.iterdir())
        subfolders = sum(p.is_dir() for p in entries)
        hint = f"; it has {subfolders} subfolder(s): pass the folder of one series" if subfolders else ""
        raise InputDataError(
            f"no DICOM files in folder {folder}: found {len(entries)} entries, none a DICOM Part-10 file; "
            f"expected one DICOM series{hint}"
        )
    headers = [_read(path, pixels=False) for path in files]
    not_images = [path for path, header in zip(files, headers, strict=True) if "Rows" not in header]
    if not_images:
        raise InputDataError(
            f"DICOM folder {folder}: {len(not_images)} of {len(files)} DICOM files are not images "
            f"(no Rows/Columns, e.g. {not_images[0].name}: a truncated file, or a report/structure set); "
            "expected only the image files of one series"
        )
    groups: dict[str, list[Any]] = defaultdict(list)
    for path, header in zip(files, headers, strict=True):
        groups[str(header.get("SeriesInstanceUID", ""))].append((path, header))
    if len(groups) > 1:
        found = "; ".join(_describe_series([h for _, h in g]) for g in groups.values())
        raise InputDataError(
            f"DICOM folder {folder} holds {len(groups)} series: {found}; expected exactly one series "
            "per folder (move each series to its own folder)"
        )
    (series,) = groups.values()
    return read_dicom_series([p for p, _ in series], headers=[h for _, h in series], source=folder)


def read_dicom_file(path: str | Path) -> DicomVolume:
    """Read one single-frame DICOM image as a volume with one slice.

    Without ImageOrientationPatient/ImagePositionPatient (common for radiographs) the image is placed
    at the origin with identity orientation, with a warning.

    Args:
        path: A DICOM file.

    Returns:
        The volume, shaped (X, Y, 1), see :class:`DicomVolume`.

    Raises:
        InputDataError: Unreadable file or unsupported pixel layout.
    """
    path = Path(path)
    return read_dicom_series([path], headers=[_read(path, pixels=False)], source=path)


def _floats(header: Any, keyword: str, n: int, path: Path) -> np.ndarray | None:
    value = header.get(keyword)
    if value is None or value == "":
        return None
    values = value if isinstance(value, Iterable) and not isinstance(value, (str, bytes)) else [value]
    try:
        arr = np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise GeometryError(f"DICOM file {path}: {keyword} {value!r} is not {n} number(s)") from e
    if arr.shape != (n,) or not np.isfinite(arr).all():
        raise GeometryError(f"DICOM file {path}: {keyword} is {list(values)}; expected {n} finite number(s)")
    return arr


def _pixel_spacing(header: Any, path: Path) -> np.ndarray:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        spacing = _floats(header, keyword, 2, path)
        if spacing is not None and (spacing > 0).all():
            return spacing
    warnings.warn(f"DICOM file {path}: no usable PixelSpacing/ImagerPixelSpacing; assuming 1 mm", stacklevel=3)
    return np.ones(2)


def _check_layout(headers: Sequence[Any], paths: Sequence[Path]) -> None:
    first = headers[0]
    for path, header in zip(paths, headers, strict=True):
        if int(header.get("NumberOfFrames", 1) or 1) != 1 or int(header.get("SamplesPerPixel", 1)) != 1:
            raise InputDataError(
                f"DICOM file {path}: NumberOfFrames={header.get('NumberOfFrames', 1)}, "
                f"SamplesPerPixel={header.get('SamplesPerPixel', 1)}; expected single-frame grayscale images"
            )
        if "Rows" not in header or "Columns" not in header:
            raise InputDataError(f"DICOM file {path} has no image (Rows/Columns missing); expected an image")
        if (header.Rows, header.Columns) != (first.Rows, first.Columns):
            raise GeometryError(
                f"DICOM file {path}: {header.Rows}x{header.Columns} pixels; expected "
                f"{first.Rows}x{first.Columns} like the other slices of the series"
            )


def _slice_geometry(headers: Sequence[Any], paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Return (orientation (6,), positions (n, 3) LPS, order sorting slices along the normal)."""
    orientations = [_floats(h, "ImageOrientationPatient", 6, p) for h, p in zip(headers, paths, strict=True)]
    positions = [_floats(h, "ImagePositionPatient", 3, p) for h, p in zip(headers, paths, strict=True)]
    missing = [p for p, o, x in zip(paths, orientations, positions, strict=True) if o is None or x is None]
    if missing:
        raise GeometryError(
            f"DICOM series {paths[0].parent}: {len(missing)} of {len(paths)} files (e.g. {missing[0].name}) "
            "lack ImageOrientationPatient/ImagePositionPatient; expected both to stack slices"
        )
    orientation = orientations[0]
    for path, other in zip(paths, orientations, strict=True):
        if not np.allclose(other, orientation, atol=_ORIENTATION_ATOL):
            raise GeometryError(
                f"DICOM file {path}: ImageOrientationPatient {np.round(other, 5).tolist()} differs from "
                f"{np.round(orientation, 5).tolist()}; expected one orientation per series"
            )
    normal = np.cross(orientation[:3], orientation[3:])
    order = sorted(range(len(paths)), key=lambda i: float(positions[i] @ normal))
    return orientation, np.stack([positions[i] for i in order]), order


def _slice_step(positions: np.ndarray, normal: np.ndarray, source: Path) -> np.ndarray:
    """The LPS vector from one slice to the next; raise if slices are not on a regular line."""
    gaps = np.diff(positions @ normal)
    if gaps.min() <= _POSITION_ATOL_MM:
        raise GeometryError(
            f"DICOM series {source}: {int((gaps <= _POSITION_ATOL_MM).sum()) + 1} slices share a position; "
            "expected one slice per position (several acquisitions, echoes or phases in one series?)"
        )
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    expected = positions[0] + np.arange(len(positions))[:, None] * step
    if np.linalg.norm(positions - expected, axis=1).max() > _POSITION_RTOL * gaps.mean() + _POSITION_ATOL_MM:
        raise GeometryError(
            f"DICOM series {source}: slice gaps range {gaps.min():.4g}-{gaps.max():.4g} mm along the normal; "
            "expected equally spaced slices (missing slices?)"
        )
    return step


def _single_slice_geometry(header: Any, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(orientation, position, step) of a lone slice; identity placement when tags are missing."""
    orientation = _floats(header, "ImageOrientationPatient", 6, path)
    position = _floats(header, "ImagePositionPatient", 3, path)
    if orientation is None or position is None:
        warnings.warn(
            f"DICOM file {path}: no ImageOrientationPatient/ImagePositionPatient; "
            "placing the image at the origin with identity orientation",
            stacklevel=3,
        )
        orientation, position = np.array([1.0, 0, 0, 0, 1, 0]), np.zeros(3)
    thickness = 1.0
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = _floats(header, keyword, 1, path)
        if value is not None and value[0] > 0:
            thickness = float(value[0])
            break
    return orientation, position, np.cross(orientation[:3], orientation[3:]) * thickness


def _pixels(path: Path) -> np.ndarray:
    """Modality-LUT applied (RescaleSlope/Intercept) pixels of one slice, float64, shaped (X, Y)."""
    pydicom = _pydicom()
    ds = _read(path, pixels=True)
    try:
        stored = ds.pixel_array
    except (RuntimeError, ValueError, NotImplementedError, AttributeError) as e:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown transfer syntax")
        raise InputDataError(
            f"cannot decode pixels of DICOM file {path} ({name}): {e}; expected complete pixel data "
            "(compressed transfer syntaxes need a pydicom decoder plugin such as pylibjpeg)"
        ) from e
    values = pydicom.pixels.apply_modality_lut(stored, ds).astype(np.float64, copy=False)
    return values.T  # (Rows, Columns) = (Y, X) -> (X, Y)


def read_dicom_series(
    paths: Sequence[str | Path], *, headers: Sequence[Any] | None = None, source: str | Path | None = None
) -> DicomVolume:
    """Stack the files of one series into a volume, sorted by position along the slice normal.

    Args:
        paths: The files of one series, in any order.
        headers: Their already-read headers (same order), to avoid reading them twice.
        source: What to name in messages (default: the folder of the first file).

    Returns:
        The volume, see :class:`DicomVolume`.

    Raises:
        InputDataError: Unreadable files, multi-frame or colour images, undecodable pixels.
        GeometryError: Missing or inconsistent orientation/position, duplicate or unequally spaced
            slices, differing slice sizes.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputDataError("read_dicom_series got no files; expected the files of one DICOM series")
    headers = list(headers) if headers is not None else [_read(p, pixels=False) for p in paths]
    src = Path(source) if source is not None else paths[0].parent
    _check_layout(headers, paths)
    if len(paths) == 1:
        orientation, origin, step = _single_slice_geometry(headers[0], paths[0])
        order = [0]
    else:
        orientation, positions, order = _slice_geometry(headers, paths)
        step = _slice_step(positions, np.cross(orientation[:3], orientation[3:]), src)
        origin = positions[0]
    row_spacing, col_spacing = _pixel_spacing(headers[order[0]], paths[order[0]])
    lps = np.eye(4)
    lps[:3, 0] = orientation[:3] * col_spacing  # i: along a row, one column further
    lps[:3, 1] = orientation[3:] * row_spacing  # j: down a column, one row further
    lps[:3, 2] = step
    lps[:3, 3] = origin
    array = np.stack([_pixels(paths[i]) for i in order], axis=-1)  # (X, Y, Z)
    first = headers[order[0]]
    meta = {
        "modality": str(first.get("Modality", "")),
        "series_description": str(first.get("SeriesDescription", "")),
        "photometric_interpretation": str(first.get("PhotometricInterpretation", "")),
    }
    return DicomVolume(array=array, affine=orientation_ras_lps(lps), meta=meta)
