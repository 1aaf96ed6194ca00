"""Synthetic CR/DX DICOM files for radiograph tests (pydicom; fake identifiers, derived UIDs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid


def write_cr(path: Path, pixels: np.ndarray, *, bits: int = 16, photometric: str = "MONOCHROME1", **tags: Any) -> Path:
    """Write a single-frame CR image; ``tags`` are set as DICOM keywords (``None`` skips)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientName, ds.PatientID = "Anon^Test", "TEST"
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1 if pixels.ndim == 2 else pixels.shape[2]
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    for key, value in tags.items():
        if value is not None:
            setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16 if bits > 8 else np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
