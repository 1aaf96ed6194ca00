"""Header facts of one DICOM file as plain values: what the scanner groups and the loader stacks.

:func:`read_header` reads a file's header only (no pixel decoding): first with the fast walker of
:mod:`medxlate.io.dicom_fastread`, else with ``pydicom.dcmread(stop_before_pixels=True)``. Both
paths hand raw element bytes to the same decoding code, so they agree value for value. Values are
decoded by the VR written in the file (a wrong but plausible VR, e.g. Rows as ``UL`` or a DS as
``FD``, still reads), falling back to the dictionary VR for implicit VR and ``UN``.

Enhanced multi-frame objects get per-frame position, orientation, pixel spacing and rescale from
their functional groups (per-frame first, then shared).

A file that cannot be used raises :class:`DicomFileError` naming the file and the problem: not
DICOM, unreadable or truncated, an image SOP class without pixel data, a geometry attribute that
is not numbers. Patient identifiers are kept apart in ``identifiers`` and never put in messages.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medxlate.errors import InputDataError
from medxlate.io.dicom_fastread import RawHeader, read_raw_header
from medxlate.io.dicom_values import (
    FG_STOP,
    IDENTIFIER_TAGS,
    TAGS,
    Values,
    decode,
    floats,
    integer,
    text,
    texts,
    uid_name,
)

__all__ = ["DicomFileError", "InstanceHeader", "read_header"]

_IMAGE_TYPE_SUFFIX = "Image Storage"
Pixel = tuple[int | None, int | None, int | None]  # (pixel data tag, value offset, length)


class DicomFileError(InputDataError):
    """One file cannot be used; ``path`` and ``problem`` (without identifiers) are kept apart."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"DICOM file {path}: {problem}")
        self.path, self.problem = path, problem


@dataclass(frozen=True)
class InstanceHeader:
    """Non-pixel facts of one DICOM file (one instance, one or more frames).

    Geometry is per frame (``positions``/``orientations``/``rescale`` have ``n_frames`` entries,
    ``None`` where missing). ``pixel_spacing`` is (row spacing, column spacing) in mm as DICOM
    stores it. ``pixel_offset``/``pixel_length`` locate native pixel data in the file
    (``pixel_length`` is None for encapsulated data). UIDs and ``identifiers`` are left out of repr.
    """

    path: Path
    sop_class_uid: str
    transfer_syntax: str
    modality: str
    description: str
    study_date: str
    series_number: int | None
    instance_number: int | None
    image_type: tuple[str, ...]
    rows: int | None
    columns: int | None
    samples_per_pixel: int
    photometric: str
    bits_allocated: int | None
    bits_stored: int | None
    pixel_representation: int
    n_frames: int
    positions: tuple[tuple[float, ...] | None, ...]
    orientations: tuple[tuple[float, ...] | None, ...]
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    rescale: tuple[tuple[float, float], ...]
    has_modality_lut: bool
    functional_groups: bool
    mosaic_images: int | None
    pixel_tag: int | None
    pixel_offset: int | None
    pixel_length: int | None
    series_uid: str = field(repr=False)
    study_uid: str = field(repr=False)
    frame_of_reference_uid: str = field(repr=False)
    identifiers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_image(self) -> bool:
        """An image SOP class (or an unknown one) with rows, columns and pixel data."""
        name = uid_name(self.sop_class_uid)
        known_other = name != self.sop_class_uid and _IMAGE_TYPE_SUFFIX not in name
        return not known_other and self.rows is not None and self.columns is not None and self.pixel_tag is not None

    @property
    def is_localizer(self) -> bool:
        """ImageType says LOCALIZER (scout/topogram)."""
        return "LOCALIZER" in self.image_type


def _pixel_problem(values: Values, raw_pixel: Pixel, size: int) -> str | None:
    """Why the pixel data cannot be complete, or None."""
    tag, offset, length = raw_pixel
    if tag is None or offset is None:
        return None
    if length is not None and offset + length > size:
        return f"truncated: pixel data needs {length} bytes, the file holds {max(size - offset, 0)}"
    rows, cols = integer(values, "Rows"), integer(values, "Columns")
    bits = integer(values, "BitsAllocated")
    if length is None or not (rows and cols and bits):
        return None
    frames = integer(values, "NumberOfFrames") or 1
    samples = integer(values, "SamplesPerPixel") or 1
    expected = math.ceil(rows * cols * frames * samples * bits / 8)
    if length < expected:
        return (
            f"pixel data has {length} bytes where {frames} frame(s) of {rows}x{cols} at {bits} bits "
            f"need {expected} (truncated?)"
        )
    return None


def _encapsulated_problem(path: Path, offset: int, size: int) -> str | None:
    """Walk the fragment items of encapsulated pixel data; report a file that ends before the end."""
    with open(path, "rb") as fp:
        fp.seek(max(size - 8, 0))
        if fp.read(8) == b"\xfe\xff\xdd\xe0\0\0\0\0":
            return None
        fp.seek(offset)
        while True:
            head = fp.read(8)
            if len(head) < 8:
                return "truncated: the file ends inside the compressed pixel data"
            group, elem, length = struct.unpack("<HHI", head)
            if (group, elem) == (0xFFFE, 0xE0DD):
                return None
            if (group, elem) != (0xFFFE, 0xE000) or fp.tell() + length > size:
                return "truncated: the file ends inside the compressed pixel data"
            fp.seek(length, os.SEEK_CUR)


def _frame_values(values: Values, n_frames: int) -> list[Values]:
    """Per-frame geometry/rescale values: the file's own for single frames, functional groups else."""
    groups = values.get("_frames")
    if not isinstance(groups, list):
        return [values] * n_frames
    return [{**values, **frame} for frame in groups]


def _header(path: Path, values: Values, syntax: str, pixel: Pixel) -> InstanceHeader:
    n_frames = integer(values, "NumberOfFrames") or 1
    frames = _frame_values(values, n_frames)
    if len(frames) != n_frames:
        raise DicomFileError(path, f"{len(frames)} per-frame functional group items for {n_frames} frames")
    positions = [floats(f, "ImagePositionPatient", 3) for f in frames]
    if n_frames > 1 and not isinstance(values.get("_frames"), list):
        positions[1:] = [None] * (n_frames - 1)  # one position for many frames: they cannot be placed
    spacing = floats(frames[0], "PixelSpacing", 2) or floats(frames[0], "ImagerPixelSpacing", 2)
    thickness = floats(frames[0], "SpacingBetweenSlices", 1) or floats(frames[0], "SliceThickness", 1)
    mosaic_creator = "SIEMENS" in text(values, "PrivateCreator19").upper()
    mosaic = integer(values, "NumberOfImagesInMosaic") if mosaic_creator else None
    return InstanceHeader(
        path=path,
        sop_class_uid=text(values, "SOPClassUID") or text(values, "MediaStorageSOPClassUID"),
        transfer_syntax=syntax,
        modality=text(values, "Modality"),
        description=text(values, "SeriesDescription"),
        study_date=text(values, "StudyDate"),
        series_number=integer(values, "SeriesNumber"),
        instance_number=integer(values, "InstanceNumber"),
        image_type=tuple(v.upper() for v in texts(values, "ImageType")),
        rows=integer(values, "Rows"),
        columns=integer(values, "Columns"),
        samples_per_pixel=integer(values, "SamplesPerPixel") or 1,
        photometric=text(values, "PhotometricInterpretation").upper(),
        bits_allocated=integer(values, "BitsAllocated"),
        bits_stored=integer(values, "BitsStored") or integer(values, "BitsAllocated"),
        pixel_representation=integer(values, "PixelRepresentation") or 0,
        n_frames=n_frames,
        positions=tuple(positions),
        orientations=tuple(floats(f, "ImageOrientationPatient", 6) for f in frames),
        pixel_spacing=(spacing[0], spacing[1]) if spacing and min(spacing) > 0 else None,
        slice_thickness=thickness[0] if thickness and thickness[0] > 0 else None,
        rescale=tuple(_rescale(f) for f in frames),
        has_modality_lut="ModalityLUTSequence" in values,
        functional_groups=isinstance(values.get("_frames"), list),
        mosaic_images=mosaic if mosaic else (0 if "MOSAIC" in texts(values, "ImageType") else None),
        pixel_tag=pixel[0],
        pixel_offset=pixel[1],
        pixel_length=pixel[2],
        series_uid=text(values, "SeriesInstanceUID"),
        study_uid=text(values, "StudyInstanceUID"),
        frame_of_reference_uid=text(values, "FrameOfReferenceUID"),
        identifiers={name: text(values, name) for name in IDENTIFIER_TAGS if text(values, name)},
    )


def _rescale(values: Values) -> tuple[float, float]:
    slope = floats(values, "RescaleSlope", 1)
    intercept = floats(values, "RescaleIntercept", 1)
    return (slope[0] if slope else 1.0, intercept[0] if intercept else 0.0)


_WANTED = frozenset(TAGS)


def _fast(path: Path, head: tuple[bytes, int] | None) -> InstanceHeader | None:
    raw = read_raw_header(path, _WANTED, FG_STOP, head)
    if raw is None:
        return None
    values = _decode_raw(raw)
    pixel = (raw.pixel_tag, raw.pixel_offset, raw.pixel_length)
    return _finish(path, values, raw.transfer_syntax, pixel, raw.file_size)


def _decode_raw(raw: RawHeader) -> Values:
    element = raw.elements.get(0x00080005)
    charset = tuple(map(str, decode(element[0], element[1], "CS"))) if element else ()
    values: Values = {}
    for tag, (vr, data) in raw.elements.items():
        name, expected_vr = TAGS[tag]
        values[name] = decode(vr, data, expected_vr, charset=charset)
    return values


def _finish(path: Path, values: Values, syntax: str, pixel: Pixel, size: int) -> InstanceHeader:
    problem = _pixel_problem(values, pixel, size)
    if problem is None and pixel[0] is not None and pixel[2] is None and pixel[1] is not None:
        problem = _encapsulated_problem(path, pixel[1], size)
    if problem:
        raise DicomFileError(path, problem)
    header = _header(path, values, syntax, pixel)
    if (header.pixel_tag is None and header.rows is not None) or _image_class_without_pixels(header):
        raise DicomFileError(path, f"{_sop_name(header)} without pixel data (truncated file?)")
    if not header.series_uid:
        raise DicomFileError(path, "no SeriesInstanceUID; expected every DICOM object to name its series")
    return header


def _sop_name(header: InstanceHeader) -> str:
    return uid_name(header.sop_class_uid) if header.sop_class_uid else "an object with no SOPClassUID"


def _image_class_without_pixels(header: InstanceHeader) -> bool:
    return header.pixel_tag is None and _IMAGE_TYPE_SUFFIX in uid_name(header.sop_class_uid)


def read_header(path: str | os.PathLike[str], head: tuple[bytes, int] | None = None) -> InstanceHeader:
    """Read the header of one DICOM file (no pixel decoding).

    Args:
        path: A file.
        head: The file's first bytes and size if already read
            (:func:`medxlate.io.dicom_fastread.read_head`).

    Returns:
        The header facts, see :class:`InstanceHeader`.

    Raises:
        DicomFileError: Not a DICOM Part-10 file, unreadable or truncated, an image SOP class
            without pixel data, no SeriesInstanceUID, or geometry attributes that are not numbers.
    """
    path = Path(path)
    try:
        header = _fast(path, head)
        if header is None:
            from medxlate.io.dicom_pydicom import read_with_pydicom

            values, syntax, pixel, size = read_with_pydicom(path)
            header = _finish(path, values, syntax, pixel, size)
    except DicomFileError:
        raise
    except ValueError as e:  # a value that does not decode (see dicom_values)
        raise DicomFileError(path, str(e)) from e
    except OSError as e:
        raise DicomFileError(path, f"cannot read the file: {e.strerror or e}") from e
    return header
