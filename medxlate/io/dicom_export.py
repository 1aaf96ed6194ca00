"""Write a synthetic volume as a DICOM series (CT or MR Image Storage) that a PACS accepts.

The series joins the source's study: StudyInstanceUID, FrameOfReferenceUID (so viewers overlay it on
the source), the patient module and the study attributes are copied from the source series' first
header; Series and SOP Instance UIDs are new (``pydicom.uid.generate_uid``). Every slice says it is
synthetic (ImageType ``DERIVED\\SECONDARY``, DerivationDescription, SeriesDescription) and references
the source slice nearest to it (SourceImageSequence) and the source series (ReferencedSeriesSequence
of the Common Instance Reference module). Geometry per slice comes from the volume's RAS affine,
converted to DICOM's LPS. Values are stored as unsigned 16-bit with one RescaleSlope/Intercept for
the whole series, chosen from the value range (quantisation error at most half a slope).

Fallback without a source DICOM series (e.g. NIfTI input): a new study and frame of reference, an
empty (anonymous) patient module, and a logged warning; the series is still valid but a PACS files
it under an unnamed patient and a viewer cannot overlay it on anything.

This module touches patient data on purpose (the output goes back to the hospital). It never logs
or returns identifiers.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medxlate.errors import GeometryError, InputDataError
from medxlate.io.atomic import atomic_dir

log = logging.getLogger(__name__)

#: Attributes copied from the source series (patient module, general study module, position).
COPIED = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "PatientPosition",
    "Laterality",
    "BodyPartExamined",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
)
#: Type 2 attributes (present, possibly empty) of the modules written.
TYPE2_EMPTY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PositionReferenceIndicator",
    "SeriesNumber",
    "PatientPosition",
    "Laterality",
)
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
    import torch

    data = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3:
        raise InputDataError(f"DICOM export: expected one volume (1, X, Y, Z), got shape {tuple(data.shape)}")
    if not np.isfinite(data).all():
        raise InputDataError("DICOM export: the volume holds NaN or infinite values")
    if modality not in ("CT", "MR"):
        raise InputDataError(f"DICOM export: modality must be 'CT' or 'MR', got {modality!r}")
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
    common = _series_attributes(modality, src, model, series_number)
    names = []
    with atomic_dir(out) as staging:  # a reader never sees half a series; errors name ``out``
        for k in range(data.shape[2]):
            stored = np.rint((data[:, :, k].T - intercept) / slope).clip(0, _STORED_MAX).astype("<u2")
            ds = _slice_dataset(common, modality, k, stored, positions[k], orientation, pixel_spacing, thickness)
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
            if src is not None:
                _reference_source(ds, src, positions[k])
            name = f"slice_{k + 1:04d}.dcm"
            ds.save_as(staging / name, enforce_file_format=True)
            names.append(name)
    return [out / name for name in names]


def _series_attributes(
    modality: str, src: SourceSeries | None, model: str, series_number: int | None
) -> dict[str, Any]:
    from pydicom.uid import generate_uid

    from medxlate import __version__

    now = datetime.datetime.now()
    attrs: dict[str, Any] = dict.fromkeys(TYPE2_EMPTY, "")
    if src is not None:
        attrs |= {k: src.header.get(k) for k in COPIED if k in src.header}
        attrs["ReferencedSeriesUID"] = str(src.header.SeriesInstanceUID)
        source_number = src.header.get("SeriesNumber")
        base = int(source_number) if source_number not in (None, "") else 0
    else:
        attrs |= {"StudyInstanceUID": generate_uid(), "FrameOfReferenceUID": generate_uid(), "StudyID": "SYNTH"}
        attrs |= {"StudyDate": now.strftime("%Y%m%d"), "StudyTime": now.strftime("%H%M%S")}
        base = 0
    attrs.setdefault("SpecificCharacterSet", "ISO_IR 192")
    description = f"SYNTHETIC {modality} by medxlate model {model}"
    attrs |= {
        "Modality": modality,
        "SeriesInstanceUID": generate_uid(),
        "SeriesNumber": series_number if series_number is not None else base + 1000,
        "SeriesDescription": description[:64],
        "SeriesDate": now.strftime("%Y%m%d"),
        "SeriesTime": now.strftime("%H%M%S"),
        "ContentDate": now.strftime("%Y%m%d"),
        "ContentTime": now.strftime("%H%M%S"),
        "DerivationDescription": (
            f"Synthetic {modality} translated by a neural network (medxlate {__version__}, model {model}); "
            "not acquired, not for diagnosis"
        )[:1024],
        "Manufacturer": "medxlate",
        "SoftwareVersions": f"medxlate {__version__}",
        "BurnedInAnnotation": "NO",
    }
    return attrs


def _slice_dataset(
    common: dict[str, Any],
    modality: str,
    index: int,
    stored: np.ndarray,
    position: np.ndarray,
    orientation: Sequence[float],
    pixel_spacing: Sequence[float],
    thickness: float,
) -> Any:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    for keyword, value in common.items():
        if keyword != "ReferencedSeriesUID":
            setattr(ds, keyword, value)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"] if modality == "CT" else ["DERIVED", "SECONDARY", "OTHER"]
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
    ds.SliceThickness = f"{thickness:.6f}"
    normal = np.cross(orientation[:3], orientation[3:])
    ds.SliceLocation = f"{float(position @ normal):.6f}"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    if modality == "CT":
        ds.KVP, ds.AcquisitionNumber, ds.RescaleType = "", "", "HU"
    else:  # synthetic: no pulse sequence; RM = research mode, the defined term for that
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "RM", "NONE", ""
        ds.MRAcquisitionType, ds.EchoTime, ds.EchoTrainLength, ds.RepetitionTime = "", "", "", ""
        ds.SpacingBetweenSlices = f"{thickness:.6f}"
    if "ReferencedSeriesUID" in common:
        from pydicom.dataset import Dataset

        item = Dataset()
        item.SeriesInstanceUID = common["ReferencedSeriesUID"]
        item.ReferencedInstanceSequence = []
        ds.ReferencedSeriesSequence = [item]
    return ds


def _reference_source(ds: Any, src: SourceSeries, position: np.ndarray) -> None:
    """SourceImageSequence -> the nearest source slice; ReferencedSeriesSequence lists them all."""
    from pydicom.dataset import Dataset

    distances = [float(np.linalg.norm(p - position)) for _, _, p in src.references]
    sop_class, sop_uid, _ = src.references[int(np.argmin(distances))]
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_uid
    ds.SourceImageSequence = [item]
    instances = []
    for ref_class, ref_uid, _ in src.references:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ref_class, ref_uid
        instances.append(ref)
    ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence = instances
