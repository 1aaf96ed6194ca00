"""More synthetic DICOM for the io tests: compressed copies, non-image objects, a Siemens mosaic.

Encoders: pydicom 3 ``Dataset.compress`` for RLE Lossless (pydicom/pylibjpeg-rle), JPEG-LS Lossless
(pyjpegls) and JPEG 2000 Lossless (pylibjpeg-openjpeg; needs slices of at least 32x32 because it
always uses 6 wavelet resolutions); pydicom's writer for Deflated Explicit VR Little Endian;
Pillow + ``pydicom.encaps.encapsulate`` for JPEG Baseline (8-bit only). No Python package here
encodes JPEG Lossless (process 14): SimpleITK's GDCM writer does (``SetCompressor("JPEG")``), so
its codestream is lifted into our dataset unchanged.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import (
    BasicTextSRStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    RTStructureSetStorage,
    generate_uid,
)

SYNTAXES = {
    "rle": RLELossless,
    "jpeg-ls": JPEGLSLossless,
    "jpeg2000": JPEG2000Lossless,
    "deflate": DeflatedExplicitVRLittleEndian,
    "jpeg-lossless": JPEGLosslessSV1,
    "jpeg-baseline": JPEGBaseline8Bit,
}


def _jpeg_lossless(stored: np.ndarray, tmp: Path) -> bytes:
    """A JPEG Lossless SV1 codestream of a (rows, cols) int16/uint16 array, encoded by GDCM."""
    image = sitk.GetImageFromArray(stored[None])
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(tmp))
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    writer.Execute(image)
    written = pydicom.dcmread(tmp)
    if written.file_meta.TransferSyntaxUID != JPEGLosslessSV1:
        raise RuntimeError(f"SimpleITK wrote {written.file_meta.TransferSyntaxUID.name}, not JPEG Lossless SV1")
    return next(generate_frames(written.PixelData, number_of_frames=1))


def _jpeg_baseline(stored: np.ndarray) -> bytes:
    if stored.dtype != np.uint8:
        raise ValueError("JPEG baseline needs 8-bit unsigned pixels (write the series with bits=8, signed=False)")
    buffer = io.BytesIO()
    Image.fromarray(stored, mode="L").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def recompress(paths: list[Path], syntax: str) -> None:
    """Rewrite DICOM files in place in another transfer syntax (see :data:`SYNTAXES`).

    Args:
        paths: Files written by the factory (native pixel data).
        syntax: A key of :data:`SYNTAXES`.
    """
    uid = SYNTAXES[syntax]
    for path in paths:
        ds = pydicom.dcmread(path)
        if syntax in ("rle", "jpeg-ls", "jpeg2000"):
            ds.compress(uid)
        elif syntax == "deflate":
            ds.file_meta.TransferSyntaxUID = uid
        else:
            stored = ds.pixel_array
            tmp = path.with_name(f".{path.stem}.tmp.dcm")
            fragment = _jpeg_lossless(stored, tmp) if syntax == "jpeg-lossless" else _jpeg_baseline(stored)
            tmp.unlink(missing_ok=True)
            ds.PixelData = encapsulate([fragment])
            ds["PixelData"].VR = "OB"
            ds.file_meta.TransferSyntaxUID = uid
        ds.save_as(path, enforce_file_format=True)


def _non_image(path: Path, sop_class: str, modality: str, seed: int) -> FileDataset:
    uid = lambda *parts: str(generate_uid(entropy_srcs=["medxlate-test", str(seed), *map(str, parts)]))  # noqa: E731
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid("sop", modality)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series", modality)
    ds.PatientName, ds.PatientID = "Test^Synthetic", "FAKE-0001"
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = modality, 90, f"{modality} object"
    return ds


def write_sr(path: Path, seed: int = 0) -> Path:
    """A minimal Basic Text SR document (no pixel data)."""
    ds = _non_image(path, BasicTextSRStorage, "SR", seed)
    ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "CONTAINER", "COMPLETE", "UNVERIFIED"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "11528-7", "LN", "Radiology Report"
    ds.ConceptNameCodeSequence = Sequence([concept])
    text = Dataset()
    text.RelationshipType, text.ValueType, text.TextValue = "CONTAINS", "TEXT", "No acute findings."
    ds.ContentSequence = Sequence([text])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rtstruct(path: Path, seed: int = 0) -> Path:
    """A minimal RT Structure Set with one square contour (no pixel data)."""
    ds = _non_image(path, RTStructureSetStorage, "RTSTRUCT", seed)
    ds.StructureSetLabel = "Body"
    roi = Dataset()
    roi.ROINumber, roi.ROIName = 1, "BODY"
    ds.StructureSetROISequence = Sequence([roi])
    contour = Dataset()
    contour.ContourGeometricType, contour.NumberOfContourPoints = "CLOSED_PLANAR", 4
    contour.ContourData = [0, 0, 0, 10, 0, 0, 10, 10, 0, 0, 10, 0]
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber, roi_contour.ContourSequence = 1, Sequence([contour])
    ds.ROIContourSequence = Sequence([roi_contour])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def make_mosaic(path: Path, images: int = 4, *, private_tag: bool = True) -> None:
    """Turn a factory MR file into a Siemens-style mosaic (ImageType MOSAIC, NumberOfImagesInMosaic)."""
    ds = pydicom.dcmread(path)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    if private_tag:
        ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
        ds.add_new(0x0019100A, "US", images)
    ds.save_as(path, enforce_file_format=True)
