"""Radiographs out: a DRR written as a CR DICOM file, so it enters through the real-radiograph path.

A model trained on DRRs meets real radiographs at inference through
:func:`medxlate.xray.load_radiograph` and :func:`medxlate.xray.to_detector_domain`. To exercise that
path without patient data (the demo, the tests), a DRR is written here as a radiograph would be
stored by a CR reader:

* SOP class CR Image Storage, ``Modality`` CR, ``ImageType`` ``DERIVED\\SECONDARY`` and a
  ``DerivationDescription`` saying it is a DRR rendered from a CT, not an acquired image;
* 16 bits allocated, ``bits_stored`` (12 or 16) stored, unsigned; the image's range mapped linearly
  onto the stored range, ``RescaleSlope``/``RescaleIntercept`` restoring the original values;
* ``MONOCHROME1`` by default (stored values inverted: attenuation dark in the stored numbers, as
  many CR readers write them), so a reader that forgets the inversion gets a negative image;
* the detector spacing only in ``ImagerPixelSpacing`` (no ``PixelSpacing``: nothing is calibrated
  to the patient plane), and ``ViewPosition`` when the view is a named one;
* no patient identifiers: ``PatientName`` and ``PatientID`` are given by the caller (default
  ``ANONYMOUS``), UIDs are freshly generated.

:func:`write_case_radiographs` renders the line integrals of a CT on the model grid for each view
(:func:`medxlate.xray.project`) and writes one such file per view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor

from medxlate.errors import InputDataError
from medxlate.io.atomic import atomic_path
from medxlate.xray.attenuation import hu_to_mu
from medxlate.xray.geometry import NAMED_VIEWS, Geometry
from medxlate.xray.projector import project

__all__ = ["DRR_DERIVATION", "write_case_radiographs", "write_radiograph_dicom"]

DRR_DERIVATION = "DRR rendered by medxlate from a CT volume, written as a radiograph; not an acquired image"


# (row direction, column direction) of each named view as displayed: PA and AP with the patient's left on
# the image's right; LL with anterior on the left (columns run towards posterior); RL with anterior on the right
_PATIENT_ORIENTATION = {"PA": ("L", "F"), "AP": ("L", "F"), "LL": ("P", "F"), "RL": ("A", "F")}


def write_radiograph_dicom(
    pixels: torch.Tensor | np.ndarray,
    path: str | Path,
    pixel_mm: float | tuple[float, float],
    view: str | float | None = None,
    *,
    monochrome1: bool = True,
    bits_stored: int = 16,
    patient_id: str = "ANONYMOUS",
    derivation: str = DRR_DERIVATION,
) -> Path:
    """Write a ``(rows, columns)`` image (attenuation bright) as a single-frame CR DICOM file.

    Args:
        pixels: the image, e.g. line integrals of a DRR; any finite range (mapped linearly onto the
            stored bits, the rescale tags restoring it up to quantisation).
        path: the file to write (atomically; parent folders are created).
        pixel_mm: detector pixel spacing ``(row, column)`` (or one number), written as
            ``ImagerPixelSpacing``.
        view: a named view (written as ``ViewPosition``); an angle or ``None`` writes none.
        monochrome1: store inverted values with ``PhotometricInterpretation`` MONOCHROME1 (else
            MONOCHROME2, stored as displayed).
        bits_stored: 12 or 16.
        patient_id: written as ``PatientID`` and ``PatientName``; must not be a patient identifier.
        derivation: ``DerivationDescription``.

    Returns:
        ``path``.

    Raises:
        InputDataError: for an image that is not 2D, holds NaN/inf, a bad spacing or bit depth.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid

    path = Path(path)
    image = np.asarray(pixels.detach().cpu() if isinstance(pixels, torch.Tensor) else pixels, dtype=np.float64)
    if image.ndim != 2 or 0 in image.shape:
        raise InputDataError(f"radiograph {path}: image of shape {image.shape}; expected (rows, columns)")
    if not np.isfinite(image).all():
        raise InputDataError(f"radiograph {path}: {int((~np.isfinite(image)).sum())} pixels are NaN/inf")
    spacing = (pixel_mm, pixel_mm) if isinstance(pixel_mm, (int, float)) else tuple(pixel_mm)
    if len(spacing) != 2 or not all(math.isfinite(float(s)) and float(s) > 0 for s in spacing):
        raise InputDataError(f"radiograph {path}: pixel_mm {pixel_mm!r}; expected positive mm (row, column)")
    if bits_stored not in (12, 16):
        raise InputDataError(f"radiograph {path}: bits_stored {bits_stored!r}; expected 12 or 16")
    top = 2**bits_stored - 1
    low, high = float(image.min()), float(image.max())
    slope = (high - low) / top if high > low else 1.0
    quantised = np.rint((image - low) / slope).clip(0, top).astype(np.uint16)
    stored = (top - quantised).astype(np.uint16) if monochrome1 else quantised

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.ImageType = "CR", ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = derivation[:1024]
    ds.PatientName, ds.PatientID = patient_id, patient_id
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    # Type 2 attributes of the Patient, General Study, General Series, CR Series and General Equipment
    # modules: present and empty (nothing is known about a rendered radiograph), as dciodvfy requires
    for keyword in (
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "Laterality",
        "Manufacturer",
    ):
        setattr(ds, keyword, "")
    ds.BodyPartExamined = ""
    named = view.upper() if isinstance(view, str) and view.upper() in NAMED_VIEWS else None
    if named is not None:
        ds.ViewPosition = named
    # rows run superior -> inferior (F); columns as radiographs are displayed (medxlate.xray.geometry)
    ds.PatientOrientation = list(_PATIENT_ORIENTATION[named]) if named is not None else ""
    ds.ImagerPixelSpacing = [f"{float(s):.10g}" for s in spacing]
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:.10g}", f"{low:.10g}", "US"
    ds.PixelData = stored.tobytes()
    with atomic_path(path, ".dcm") as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path


def write_case_radiographs(
    ct_hu: torch.Tensor,
    affine: torch.Tensor,
    geometries: Sequence[Geometry],
    folder: str | Path,
    stem: str,
    monochrome1: bool = True,
) -> list[Path]:
    """Render a CT's views as line integrals and write each as a CR DICOM radiograph.

    Args:
        ct_hu: ``(1, S, S, S)`` CT in HU on the model grid (e.g. :attr:`medxlate.xray.cases.LiftCase.ct_hu`).
        affine: the grid's affine (only its spacing and orientation matter: the isocentre is the
            volume's centre).
        geometries: the views; each file's ``ImagerPixelSpacing`` is its geometry's detector spacing.
        folder: where the files go, named ``<stem>_<view>.dcm``.
        stem: file-name stem (an opaque case id, never a patient identifier).
        monochrome1: see :func:`write_radiograph_dicom`.

    Returns:
        The written files, in the order of ``geometries``.
    """
    with torch.no_grad():
        hu = ct_hu.as_tensor() if isinstance(ct_hu, MetaTensor) else ct_hu
        lines = project(hu_to_mu(hu)[None], affine, geometries)  # (1, V, rows, columns)
    written = []
    for index, geometry in enumerate(geometries):
        name = geometry.view if isinstance(geometry.view, str) else f"{geometry.view:g}deg"
        written.append(
            write_radiograph_dicom(
                lines[0, index],
                Path(folder) / f"{stem}_{name}.dcm",
                geometry.pixel_mm,
                geometry.view,
                monochrome1=monochrome1,
                patient_id=stem,
            )
        )
    return written
