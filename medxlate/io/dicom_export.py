"""Write a synthetic volume as a DICOM series (CT or MR Image Storage) that a PACS accepts.

The series joins the source's study: StudyInstanceUID, FrameOfReferenceUID (so viewers overlay it on
the source), the patient module and the study attributes are copied from the source series' first
header; Series and SOP Instance UIDs are new (``pydicom.uid.generate_uid``). Every slice says it is
synthetic (ImageType ``DERIVED\\SECONDARY``, DerivationDescription, SeriesDescription) and references
the source slice nearest to it (SourceImageSequence) and the source series (ReferencedSeriesSequence
of the Common Instance Reference module). Geometry per slice comes from the volume's RAS affine,
converted to DICOM's LPS. Values are stored as unsigned 16-bit with one RescaleSlope/Intercept for
the whole series, chosen from the value range (quantisation error at most half a slope). A default
display window (VOI LUT) and the conditional attributes follow :mod:`medxlate.io.dicom_attributes`.

The series is streamed: the attributes shared by every slice (the ReferencedSeriesSequence listing
every source instance among them) are encoded once and written to each file as bytes, and only one
slice's pixels exist at a time besides the input volume (no whole-volume copy or mask).

Fallback without a source DICOM series (e.g. NIfTI input): a new study and frame of reference, an
empty (anonymous) patient module, and a logged warning; the series is still valid but a PACS files
it under an unnamed patient and a viewer cannot overlay it on anything.

This module touches patient data on purpose (the output goes back to the hospital). It never logs
or returns identifiers.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medxlate.errors import GeometryError, InputDataError
from medxlate.io.atomic import atomic_dir
from medxlate.io.dicom_attributes import display_window, series_attributes

__all__ = ["SourceSeries", "quantisation", "read_source_series", "save_dicom_series", "slice_geometry"]

log = logging.getLogger(__name__)

_STORED_MAX = 65535  # unsigned 16-bit


@dataclass(frozen=True)
class SourceSeries:
    """What the export needs from the source series: its first header and each slice's reference."""

    header: Any  # pydicom Dataset without pixel data
    references: list[tuple[str, str, np.ndarray]]  # (SOP class UID, SOP instance UID, position LPS)


def read_source_series(path: str | os.PathLike[str] | Sequence[Path]) -> SourceSeries:
    """Headers of the DICOM series at ``path`` (a folder of one series, one of its files, or its files).

    Raises:
        InputDataError: if no DICOM file is found or the folder holds several series.
    """
    import pydicom

    if isinstance(path, (str, os.PathLike)):
        root = Path(path)
        files = [root] if root.is_file() else sorted(p for p in root.iterdir() if p.is_file())
    else:
        files = list(path)
        root = files[0].parent if files else Path(".")
    headers = []
    for file in files:
        try:
            headers.append(pydicom.dcmread(file, stop_before_pixels=True))
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
    headers = [h for h in headers if "SOPInstanceUID" in h and "SeriesInstanceUID" in h]
    if not headers:
        raise InputDataError(f"{root}: no DICOM image found to copy the patient and study from")
    if len({h.SeriesInstanceUID for h in headers}) > 1:
        raise InputDataError(f"{root}: holds several DICOM series; expected the one source series")
    references = [
        (str(h.SOPClassUID), str(h.SOPInstanceUID), np.asarray(h.get("ImagePositionPatient", [0, 0, 0]), float))
        for h in headers
    ]
    return SourceSeries(header=headers[0], references=references)


def quantisation(values: np.ndarray) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept mapping ``values`` onto 0..65535, as they read back from DS.

    Both are rounded to what a DICOM decimal string holds (``%.10g``), and the slope is never 0.

    Returns:
        ``(slope, intercept)``.
    """
    low, high = float(values.min()), float(values.max())
    intercept = float(f"{low:.10g}")
    slope = float(f"{max((high - intercept) / _STORED_MAX, 1e-6) * (1 + 1e-9):.10g}")
    return slope, intercept


def slice_geometry(affine_ras: np.ndarray, n_slices: int) -> tuple[list[float], list[float], float, np.ndarray]:
    """DICOM plane geometry of slice ``k`` from a RAS voxel-to-world affine.

    Returns:
        ImageOrientationPatient (row then column direction, LPS), PixelSpacing ``[row spacing,
        column spacing]``, the slice thickness, and ImagePositionPatient of every slice ``(n, 3)``.

    Raises:
        GeometryError: if the in-plane axes are not orthogonal or the slice axis is not along
            their normal (a sheared grid, which DICOM slices cannot describe).
    """
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(affine_ras, dtype=np.float64)
    axes = lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    unit = axes / spacing
    normal = np.cross(unit[:, 0], unit[:, 1])
    if abs(unit[:, 0] @ unit[:, 1]) > 1e-4 or abs(abs(unit[:, 2] @ normal) - 1) > 1e-4:
        raise GeometryError(
            f"DICOM export needs an orthogonal grid (slices along the normal of the rows and columns); "
            f"got affine {np.round(affine_ras, 4).tolist()}"
        )
    orientation = [float(v) for v in (*unit[:, 0], *unit[:, 1])]
    positions = lps[:3, 3][None, :] + np.arange(n_slices)[:, None] * axes[:, 2][None, :]
    return orientation, [float(spacing[1]), float(spacing[0])], float(spacing[2]), positions


def save_dicom_series(
    volume: Any,
    folder: str | os.PathLike[str],
    *,
    modality: Literal["CT", "MR"],
    source: str | os.PathLike[str] | SourceSeries | None,
    model: str,
    series_number: int | None = None,
) -> list[Path]:
    """Write ``volume`` as a new DICOM series of the target modality's IOD into ``folder``.

    Args:
        volume: ``MetaTensor`` ``(1, X, Y, Z)`` (or ``(X, Y, Z)``) in target units with a RAS
            ``.affine`` (what :class:`~medxlate.inference.Translator` returns).
        folder: Output folder; created, must not exist or be empty. Written atomically (a
            temporary sibling folder renamed into place).
        modality: ``"CT"`` (CT Image Storage) or ``"MR"`` (MR Image Storage).
        source: The source DICOM series (folder, file or :class:`SourceSeries`), or ``None`` for
            the anonymous new-study fallback (warned).
        model: Which model made it (e.g. run id or checkpoint name), written into the
            SeriesDescription and DerivationDescription; must not hold patient identifiers.
        series_number: SeriesNumber; default: the source's + 1000 (or 1000).

    Returns:
        The written files, slice order.

    Raises:
        InputDataError: if the folder is not empty, the volume is not one 3D channel or holds
            non-finite values, or the source cannot be read.
        GeometryError: if the affine is sheared.
    """
    data = _volume_array(volume, modality)
    out = Path(folder)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputDataError(f"{out}: output folder exists and is not empty; expected a new or empty folder")
    src = read_source_series(source) if isinstance(source, (str, os.PathLike)) else source
    if src is None:
        log.warning(
            "DICOM export: no source DICOM series; writing a new study with an anonymous patient module "
            "and a new frame of reference (the PACS cannot file it with the patient's images)"
        )
    affine = np.asarray(getattr(volume, "affine", np.eye(4)), dtype=np.float64)
    orientation, pixel_spacing, thickness, positions = slice_geometry(affine, data.shape[2])
    slope, intercept = quantisation(data)
    common = series_attributes(modality, src.header if src is not None else None, model, series_number)
    common |= display_window(modality, data)
    header = _series_header(common, modality, data.shape, (orientation, pixel_spacing, thickness), (slope, intercept))
    if src is not None:
        referenced = _referenced_series(src)  # Common Instance Reference: encoded once
        header[referenced.tag] = referenced
    names = []
    with atomic_dir(out) as staging:  # a reader never sees half a series; errors name ``out``
        for k in range(data.shape[2]):  # one slice in memory at a time
            stored = np.rint((data[:, :, k].T - intercept) / slope).clip(0, _STORED_MAX).astype("<u2")
            ds = _slice_dataset(header, modality, k, stored, positions[k], orientation)
            if src is not None:
                ds.SourceImageSequence = [_nearest_source(src, positions[k])]
            names.append(f"slice_{k + 1:04d}.dcm")
            ds.save_as(staging / names[-1], enforce_file_format=True)
    return [out / name for name in names]


def _volume_array(volume: Any, modality: str) -> np.ndarray:
    """The ``(X, Y, Z)`` array of ``volume`` (a view, no copy), checked."""
    import torch

    data = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3:
        raise InputDataError(f"DICOM export: expected one volume (1, X, Y, Z), got shape {tuple(data.shape)}")
    if not (np.isfinite(data.min()) and np.isfinite(data.max())):  # min/max propagate NaN: no mask copy
        raise InputDataError("DICOM export: the volume holds NaN or infinite values")
    if modality not in ("CT", "MR"):
        raise InputDataError(f"DICOM export: modality must be 'CT' or 'MR', got {modality!r}")
    return data


def _encoded(ds: Any) -> dict[Any, Any]:
    """``ds`` encoded once (explicit VR little endian) and read back as raw elements, tag -> element.

    A raw element is written to each file as its bytes: no re-validation, no re-encoding per slice.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import data_element_generator
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds)
    return {e.tag: e for e in data_element_generator(io.BytesIO(buffer.getvalue()), False, True)}


def _series_header(
    common: dict[str, Any],
    modality: str,
    shape: tuple[int, ...],
    plane: tuple[Sequence[float], Sequence[float], float],
    rescale: tuple[float, float],
) -> dict[Any, Any]:
    """Every attribute that is the same on each slice, encoded once (see :func:`_encoded`)."""
    from pydicom.dataset import Dataset
    from pydicom.uid import CTImageStorage, MRImageStorage

    orientation, pixel_spacing, thickness = plane
    ds = Dataset()
    for keyword, value in common.items():
        if keyword != "ReferencedSeriesUID":
            setattr(ds, keyword, value)
    ds.SOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if modality == "CT" else ["DERIVED", "SECONDARY", "OTHER"]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    ds.SliceThickness = f"{thickness:.6f}"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = shape[1], shape[0]  # a slice is stored transposed: (Y, X)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = f"{rescale[0]:.10g}", f"{rescale[1]:.10g}"
    if modality == "CT":
        ds.KVP, ds.AcquisitionNumber, ds.RescaleType = "", "", "HU"
    else:  # synthetic: no pulse sequence; RM = research mode, the defined term for that
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "RM", "NONE", ""
        ds.MRAcquisitionType, ds.EchoTime, ds.EchoTrainLength, ds.RepetitionTime = "", "", "", ""
        ds.SpacingBetweenSlices = f"{thickness:.6f}"
    return _encoded(ds)


def _slice_dataset(
    header: dict[Any, Any],
    modality: str,
    index: int,
    stored: np.ndarray,
    position: np.ndarray,
    orientation: Sequence[float],
) -> Any:
    """One slice: the encoded series header plus what differs per slice."""
    from pydicom.charset import convert_encodings
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", dict(header), file_meta=meta, preamble=b"\0" * 128, is_implicit_VR=False)
    # the raw elements were encoded in this syntax and character set: pydicom writes them as they are
    ds.set_original_encoding(False, True, convert_encodings(ds.SpecificCharacterSet))
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    normal = np.cross(orientation[:3], orientation[3:])
    ds.SliceLocation = f"{float(position @ normal):.6f}"
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    ds["PixelData"].VR = "OW"
    return ds


def _referenced_series(src: SourceSeries) -> Any:
    """ReferencedSeriesSequence: the source series and all its instances, encoded once."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.SeriesInstanceUID = str(src.header.SeriesInstanceUID)
    instances = []
    for ref_class, ref_uid, _ in src.references:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ref_class, ref_uid
        instances.append(ref)
    item.ReferencedInstanceSequence = instances
    holder = Dataset()
    holder.ReferencedSeriesSequence = [item]
    (element,) = _encoded(holder).values()
    return element


def _nearest_source(src: SourceSeries, position: np.ndarray) -> Any:
    """SourceImageSequence item: the source slice nearest to ``position``."""
    from pydicom.dataset import Dataset

    distances = np.linalg.norm(np.stack([p for _, _, p in src.references]) - position, axis=1)
    sop_class, sop_uid, _ = src.references[int(np.argmin(distances))]
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
    return item
