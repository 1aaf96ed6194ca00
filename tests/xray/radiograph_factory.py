"""Synthetic CR/DX DICOM files for radiograph tests (pydicom; fake identifiers, derived UIDs)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import dictionary_VR, keyword_dict
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid


def write_cr(path: Path, pixels: np.ndarray, *, bits: int = 16, photometric: str = "MONOCHROME1", **tags: Any) -> Path:
    """Write a single-frame CR image; ``tags`` are set as DICOM keywords (``None`` skips; ``bytes`` are
    stored as given, so a malformed value such as ``b"abc "`` for a DS tag can be written)."""
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
        if isinstance(value, bytes):
            tag = Tag(keyword_dict[key])
            ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)
        elif value is not None:
            setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16 if bits > 8 else np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` 8-bit grey pixels, with one empty IDAT: PIL reads
    the size from the header, so nothing of that size is ever allocated."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path
