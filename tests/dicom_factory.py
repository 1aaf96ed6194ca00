"""Synthetic DICOM series for tests: valid CT/MR Image Storage files written with pydicom 3.

Geometry convention (the one ITK, SimpleITK and MONAI's readers agree on):

* ``volume`` is indexed ``(X, Y, Z)``: ``X`` runs along a row (the DICOM *column* index, direction
  ``row_dir``), ``Y`` runs down a column (the DICOM *row* index, direction ``col_dir``), ``Z`` is the
  slice index along ``normal = row_dir x col_dir``.
* ``spacing = (sx, sy, sz)``: ``PixelSpacing = [sy, sx]`` (row spacing first, as DICOM stores it), and
  ``sz`` the distance between slice centres.
* World coordinates are DICOM patient coordinates (LPS, millimetres): voxel ``(i, j, k)`` lies at
  ``origin + i*sx*row_dir + j*sy*col_dir + k*sz*normal``.

Everything identifying is fake: patient name/ID are placeholders, UIDs are derived from ``seed``
(same seed, same UIDs), file names are random hex so that directory order is not slice order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

InstanceOrder = Literal["ascending", "descending", "shuffled", "missing"]

_SOP_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage}
_ENHANCED_SOP_CLASS = {"CT": EnhancedCTImageStorage, "MR": EnhancedMRImageStorage}


def _per_slice(value: float | Sequence[float], n: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a scalar or have one value per slice ({n}), got shape {arr.shape}")
    return arr


def _unit(v: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float64)
    norm = np.linalg.norm(arr)
    if arr.shape != (3,) or norm == 0:
        raise ValueError(f"{name} must be a non-zero 3-vector, got {v!r}")
    return arr / norm


def _instance_numbers(order: InstanceOrder, n: int, rng: np.random.Generator) -> list[int | None]:
    if order == "ascending":
        return list(range(1, n + 1))
    if order == "descending":
        return list(range(n, 0, -1))
    if order == "shuffled":
        return [int(v) + 1 for v in rng.permutation(n)]
    if order == "missing":
        return [None] * n
    raise ValueError(f"instance_order must be ascending/descending/shuffled/missing, got {order!r}")


def _stored_values(hu: np.ndarray, slope: float, intercept: float, signed: bool, bits: int = 16) -> np.ndarray:
    raw = np.rint((hu - intercept) / slope)
    info = np.iinfo(f"{'int' if signed else 'uint'}{bits}")
    if raw.min() < info.min or raw.max() > info.max:
        raise ValueError(
            f"stored values [{raw.min()}, {raw.max()}] do not fit {info.dtype}; adjust slope/intercept/signed"
        )
    return raw.astype(info.dtype)


def _uid_maker(seed: int) -> Callable[..., str]:
    """Deterministic UIDs: the same seed and parts give the same UID."""

    def uid(*parts: object) -> str:
        return str(generate_uid(entropy_srcs=["medxlate-test", str(seed), *map(str, parts)]))

    return uid


def _new_dataset(path: Path, sop_class: str, sop_uid: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def _set_pixels(ds: FileDataset, pixels: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    """Store a (Rows, Columns) or (frames, Rows, Columns) 8/16-bit integer array as grayscale pixel data."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape[-2:]
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()


def write_ct_series(
    folder: str | Path,
    volume_hu: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    row_dir: Sequence[float] = (1.0, 0.0, 0.0),
    col_dir: Sequence[float] = (0.0, 1.0, 0.0),
    *,
    shuffle: bool = True,
    slope: float | Sequence[float] = 1.0,
    intercept: float | Sequence[float] = -1024.0,
    signed: bool = True,
    instance_order: InstanceOrder = "ascending",
    modality: Literal["CT", "MR"] = "CT",
    series_description: str = "Synthetic test series",
    series_number: int = 1,
    seed: int = 0,
    patient_name: str = "Test^Synthetic",
    patient_id: str = "FAKE-0001",
    extra: Mapping[str, Any] | None = None,
    positions: np.ndarray | Sequence[Sequence[float]] | None = None,
    bits: Literal[8, 16] = 16,
    photometric: Literal["MONOCHROME1", "MONOCHROME2"] = "MONOCHROME2",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    instance_offset: int = 0,
    study_date: str | None = None,
) -> list[Path]:
    """Write ``volume_hu`` as one DICOM series, one file per slice.

    Args:
        folder: Output folder (created if missing). Other series may already live there.
        volume_hu: Physical values (HU for CT) shaped ``(X, Y, Z)``; see the module docstring.
        spacing: ``(sx, sy, sz)`` in mm: column spacing, row spacing, slice spacing.
        origin: ImagePositionPatient of slice 0 (LPS, mm).
        row_dir: Direction cosine of a row (first 3 values of ImageOrientationPatient); normalised.
        col_dir: Direction cosine of a column (last 3 values); must be orthogonal to ``row_dir``.
        shuffle: Random hex file names, written in random order. If False, ``slice_0000.dcm``... in
            slice order.
        slope: RescaleSlope, a scalar or one value per slice.
        intercept: RescaleIntercept, a scalar or one value per slice.
        signed: PixelRepresentation 1 (int16) if True, 0 (uint16) otherwise.
        instance_order: How InstanceNumber relates to the slice position along the normal;
            ``"missing"`` leaves InstanceNumber out.
        modality: ``"CT"`` or ``"MR"``; selects the SOP class too.
        series_description: SeriesDescription.
        series_number: SeriesNumber.
        seed: Seeds UIDs, file names and shuffles (same seed, byte-identical series).
        patient_name: Fake PatientName.
        patient_id: Fake PatientID.
        extra: Additional attributes set on every slice (keyword -> value), applied last.
        positions: ImagePositionPatient of each slice (LPS mm), overriding the regular grid
            ``origin + k * sz * normal`` (for gaps, uneven spacing, duplicates, gantry tilt).
        bits: Bits allocated and stored (8 or 16).
        photometric: PhotometricInterpretation written (the stored values are the same: a
            MONOCHROME1 reader must invert them).
        image_type: ImageType, e.g. ``("ORIGINAL", "PRIMARY", "LOCALIZER")``.
        instance_offset: Added to the instance index in SOPInstanceUIDs and mixed into the file
            name seed, to add more files to an existing series (same ``seed``/``series_number``).
        study_date: StudyDate (YYYYMMDD); left out when None.

    Returns:
        Paths of the written files, in slice order (index ``k`` holds slice ``k``).

    Raises:
        ValueError: Bad shapes, non-orthogonal directions, or values that do not fit the stored type.
    """
    vol = np.asarray(volume_hu, dtype=np.float64)
    if vol.ndim != 3:
        raise ValueError(f"volume_hu must be (X, Y, Z), got shape {vol.shape}")
    nz = vol.shape[2]
    r, c = _unit(row_dir, "row_dir"), _unit(col_dir, "col_dir")
    if abs(float(r @ c)) > 1e-6:
        raise ValueError(f"row_dir and col_dir must be orthogonal (dot={float(r @ c):.3g})")
    sx, sy, sz = (float(s) for s in spacing)
    slopes, intercepts = _per_slice(slope, nz, "slope"), _per_slice(intercept, nz, "intercept")
    rng = np.random.default_rng(seed if instance_offset == 0 else (seed, instance_offset))
    instance_numbers = _instance_numbers(instance_order, nz, rng)
    uid = _uid_maker(seed)
    common = {
        "StudyInstanceUID": uid("study"),
        "SeriesInstanceUID": uid("series", series_number),
        "FrameOfReferenceUID": uid("frame"),
        "PatientName": patient_name,
        "PatientID": patient_id,
        "Modality": modality,
        "SeriesDescription": series_description,
        "SeriesNumber": series_number,
        "ImageType": list(image_type),
        "ImageOrientationPatient": [f"{v:.8f}" for v in (*r, *c)],
        "PixelSpacing": [f"{sy:.6f}", f"{sx:.6f}"],  # row spacing (along col_dir) first
        "SliceThickness": f"{sz:.6f}",
        "RescaleType": "HU" if modality == "CT" else "US",
        **({"StudyDate": study_date} if study_date else {}),
    }
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if shuffle:
        paths = [out / f"{rng.integers(0, 2**63):016x}.dcm" for _ in range(nz)]
    else:
        paths = [out / f"slice_{k:04d}.dcm" for k in range(nz)]
    normal = np.cross(r, c)
    grid = np.asarray(origin, dtype=np.float64) + np.arange(nz)[:, None] * sz * normal
    where = grid if positions is None else np.asarray(positions, dtype=np.float64).reshape(nz, 3)
    for k in rng.permutation(nz) if shuffle else range(nz):
        ds = _new_dataset(paths[k], _SOP_CLASS[modality], uid("sop", series_number, k + instance_offset))
        position = where[k]
        attributes = {
            **common,
            "ImagePositionPatient": [f"{v:.6f}" for v in position],
            "SliceLocation": f"{float(position @ normal):.6f}",
            "RescaleSlope": f"{slopes[k]:.10g}",
            "RescaleIntercept": f"{intercepts[k]:.10g}",
        }
        if instance_numbers[k] is not None:
            attributes["InstanceNumber"] = instance_numbers[k] + instance_offset
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        # DICOM pixel data is (Rows, Columns) = (Y, X): transpose the (X, Y) slice.
        stored = _stored_values(vol[:, :, k].T, float(slopes[k]), float(intercepts[k]), signed, bits)
        _set_pixels(ds, stored, photometric)
        for keyword, value in (extra or {}).items():
            setattr(ds, keyword, value)
        ds.save_as(paths[k], enforce_file_format=True)
    return paths


def _item(**attributes: Any) -> DicomSequence:
    """A one-item sequence holding ``attributes``."""
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return DicomSequence([item])


def write_enhanced_series(
    path: str | Path,
    volume_hu: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    row_dir: Sequence[float] = (1.0, 0.0, 0.0),
    col_dir: Sequence[float] = (0.0, 1.0, 0.0),
    *,
    modality: Literal["CT", "MR"] = "CT",
    slope: float | Sequence[float] = 1.0,
    intercept: float | Sequence[float] = -1024.0,
    per_frame_rescale: bool = False,
    frame_order: Literal["ascending", "shuffled"] = "ascending",
    positions: np.ndarray | Sequence[Sequence[float]] | None = None,
    series_description: str = "Synthetic enhanced series",
    series_number: int = 1,
    seed: int = 0,
) -> Path:
    """Write ``volume_hu`` as one enhanced multi-frame CT/MR file with functional groups.

    Shared groups hold PixelMeasuresSequence (PixelSpacing, SliceThickness, SpacingBetweenSlices),
    PlaneOrientationSequence and, unless ``per_frame_rescale``, PixelValueTransformationSequence;
    each per-frame item holds PlanePositionSequence, FrameContentSequence and, with
    ``per_frame_rescale``, its own PixelValueTransformationSequence.

    Args:
        path: Output file.
        volume_hu: ``(X, Y, Z)`` values, see :func:`write_ct_series`.
        spacing: ``(sx, sy, sz)`` in mm.
        origin: Position of frame 0 of the volume (LPS, mm).
        row_dir: Row direction cosine.
        col_dir: Column direction cosine.
        modality: ``"CT"`` or ``"MR"`` (Enhanced CT/MR Image Storage).
        slope: RescaleSlope, scalar or per slice (per slice needs ``per_frame_rescale``).
        intercept: RescaleIntercept, idem.
        per_frame_rescale: Put the rescale in each frame's group instead of the shared group.
        frame_order: ``"shuffled"`` stores the frames in random order (positions say where they go).
        positions: Per-slice ImagePositionPatient overriding the regular grid.
        series_description: SeriesDescription.
        series_number: SeriesNumber.
        seed: Seeds UIDs and the frame shuffle.

    Returns:
        The path written.
    """
    vol = np.asarray(volume_hu, dtype=np.float64)
    nz = vol.shape[2]
    r, c = _unit(row_dir, "row_dir"), _unit(col_dir, "col_dir")
    sx, sy, sz = (float(v) for v in spacing)
    slopes, intercepts = _per_slice(slope, nz, "slope"), _per_slice(intercept, nz, "intercept")
    if not per_frame_rescale and (np.ptp(slopes) > 0 or np.ptp(intercepts) > 0):
        raise ValueError("per-slice slope/intercept need per_frame_rescale=True")
    grid = np.asarray(origin, dtype=np.float64) + np.arange(nz)[:, None] * sz * np.cross(r, c)
    where = grid if positions is None else np.asarray(positions, dtype=np.float64).reshape(nz, 3)
    rng = np.random.default_rng(seed)
    order = rng.permutation(nz) if frame_order == "shuffled" else np.arange(nz)
    uid = _uid_maker(seed)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds = _new_dataset(out, _ENHANCED_SOP_CLASS[modality], uid("sop", series_number, "enhanced"))
    for keyword, value in {
        "StudyInstanceUID": uid("study"),
        "SeriesInstanceUID": uid("series", series_number),
        "FrameOfReferenceUID": uid("frame"),
        "PatientName": "Test^Synthetic",
        "PatientID": "FAKE-0001",
        "Modality": modality,
        "SeriesDescription": series_description,
        "SeriesNumber": series_number,
        "InstanceNumber": 1,
        "ImageType": ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"],
        "NumberOfFrames": nz,
    }.items():
        setattr(ds, keyword, value)
    shared = Dataset()
    shared.PixelMeasuresSequence = _item(
        PixelSpacing=[f"{sy:.6f}", f"{sx:.6f}"], SliceThickness=f"{sz:.6f}", SpacingBetweenSlices=f"{sz:.6f}"
    )
    shared.PlaneOrientationSequence = _item(ImageOrientationPatient=[f"{v:.8f}" for v in (*r, *c)])
    if not per_frame_rescale:
        shared.PixelValueTransformationSequence = _item(
            RescaleSlope=f"{slopes[0]:.10g}", RescaleIntercept=f"{intercepts[0]:.10g}", RescaleType="HU"
        )
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames, pixels = [], []
    for n, k in enumerate(order):
        item = Dataset()
        item.PlanePositionSequence = _item(ImagePositionPatient=[f"{v:.6f}" for v in where[k]])
        item.FrameContentSequence = _item(InStackPositionNumber=int(k) + 1, DimensionIndexValues=[1, int(k) + 1])
        item.FrameContentSequence[0].FrameAcquisitionNumber = n + 1
        if per_frame_rescale:
            item.PixelValueTransformationSequence = _item(
                RescaleSlope=f"{slopes[k]:.10g}", RescaleIntercept=f"{intercepts[k]:.10g}", RescaleType="HU"
            )
        frames.append(item)
        pixels.append(_stored_values(vol[:, :, k].T, float(slopes[k]), float(intercepts[k]), True))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    _set_pixels(ds, np.stack(pixels))
    ds.save_as(out, enforce_file_format=True)
    return out


def slice_values_hu(
    volume_hu: np.ndarray, slope: float | Sequence[float], intercept: float | Sequence[float]
) -> np.ndarray:
    """The values a reader must return after rescale: ``volume_hu`` quantised per slice.

    Args:
        volume_hu: ``(X, Y, Z)`` values given to :func:`write_ct_series`.
        slope: Same as given to :func:`write_ct_series`.
        intercept: Same as given to :func:`write_ct_series`.

    Returns:
        ``(X, Y, Z)`` float64 array of ``stored * slope + intercept``.
    """
    vol = np.asarray(volume_hu, dtype=np.float64)
    nz = vol.shape[2]
    s = _per_slice(slope, nz, "slope")
    b = _per_slice(intercept, nz, "intercept")
    return np.rint((vol - b) / s) * s + b
