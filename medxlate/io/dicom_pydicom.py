"""Header reading with pydicom, for the files the fast walker leaves (and the judge of bad files).

Reads with ``stop_before_pixels=True`` from an open file, then looks at the element the reader
stopped at to locate the pixel data without reading it. Values go through the same decoder as the
fast walker (:func:`medxlate.io.dicom_values.decode`); enhanced multi-frame functional groups are
flattened to one value mapping per frame.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from medxlate.io.dicom_fastread import PIXEL_TAGS
from medxlate.io.dicom_values import TAGS, Values, decode

__all__ = ["read_with_pydicom"]

_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
_GROUPS = {
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
}
_VR_BY_NAME = {name: vr for name, vr in TAGS.values()}
_TAG_BY_NAME = {name: tag for tag, (name, _) in TAGS.items()}

Pixel = tuple[int | None, int | None, int | None]


def _values_of(element: Any, expected_vr: str, charset: tuple[str, ...]) -> tuple[Any, ...]:
    """Decoded values of a raw or already converted pydicom element."""
    if element.VR == "SQ" or expected_vr == "SQ":
        return ()
    value = element.value
    if isinstance(value, bytes) and not hasattr(element, "keyword"):  # RawDataElement
        return decode(element.VR, value, expected_vr, little_endian=element.is_little_endian, charset=charset)
    if value is None or value == "":
        return ()
    items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    return tuple(str(v) for v in items)


def _first_item(dataset: Any, keyword: str) -> Any:
    if dataset is None or keyword not in dataset:
        return None
    sequence = dataset[keyword].value
    return sequence[0] if sequence else None


def _frames(ds: Any, charset: tuple[str, ...]) -> list[Values]:
    """One value mapping per frame from the functional groups (per-frame first, then shared)."""
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds["PerFrameFunctionalGroupsSequence"].value if "PerFrameFunctionalGroupsSequence" in ds else [None]
    frames = []
    for item in per_frame:
        frame: Values = {}
        for sequence, names in _GROUPS.items():
            source = _first_item(item, sequence) or _first_item(shared, sequence)
            for name in names if source is not None else ():
                tag = _TAG_BY_NAME[name]
                if tag in source:
                    frame[name] = _values_of(source.get_item(tag), _VR_BY_NAME.get(name, "DS"), charset)
        frames.append(frame)
    return frames


def _pixel_at(fp: Any, position: int, size: int, implicit: bool, little: bool) -> Pixel:
    """Locate the pixel data element the reader stopped at (None values when there is none)."""
    fp.seek(position)
    head = fp.read(12)
    if len(head) < 8:
        return None, None, None
    order = "<" if little else ">"
    group, elem = struct.unpack(f"{order}HH", head[:4])
    tag = group << 16 | elem
    if tag not in PIXEL_TAGS:
        return None, None, None
    vr = head[4:6].decode("ascii", "replace")
    if implicit:
        offset, length = position + 8, struct.unpack(f"{order}I", head[4:8])[0]
    elif vr in _LONG_VRS:
        offset, length = position + 12, struct.unpack(f"{order}I", head[8:12])[0]
    else:
        offset, length = position + 8, struct.unpack(f"{order}H", head[6:8])[0]
    return tag, offset, None if length == 0xFFFFFFFF else length


def _truncated_element(ds: Any, size: int) -> str | None:
    for element in ds.elements():
        tell, length = getattr(element, "value_tell", None), getattr(element, "length", 0)
        if tell is not None and length not in (None, 0xFFFFFFFF) and tell + length > size:
            tag = f"({element.tag >> 16:04X},{element.tag & 0xFFFF:04X})"
            return f"truncated: the file ends inside the header (element {tag})"
    return None


def read_with_pydicom(path: Path) -> tuple[Values, str, Pixel, int]:
    """Read a header with pydicom.

    Args:
        path: A file.

    Returns:
        (values by keyword, transfer syntax UID, (pixel tag, value offset, length), file size).
        Deflated files give a pixel offset of None (their offsets are not file offsets).

    Raises:
        DicomFileError: Not DICOM, or a header pydicom cannot parse (damaged, truncated).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from medxlate.io.dicom_header import DicomFileError

    size = path.stat().st_size
    with open(path, "rb") as fp:
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
            implicit, little = ds.original_encoding
            if syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
                full = pydicom.dcmread(path)
                data = full.get_item(0x7FE00010)
                pixel: Pixel = (0x7FE00010, None, len(data.value)) if data is not None else (None, None, None)
            else:
                pixel = _pixel_at(fp, fp.tell(), size, bool(implicit), bool(little))
                truncated = _truncated_element(ds, size)
                if truncated and pixel[0] is None:
                    raise DicomFileError(path, truncated)
        except InvalidDicomError as e:
            raise DicomFileError(path, "not a DICOM Part-10 file (no 'DICM' marker after the 128-byte preamble)") from e
        except (EOFError, struct.error, KeyError, TypeError, NotImplementedError, AttributeError, zlib.error) as e:
            problem = f"cannot parse the DICOM header ({type(e).__name__}: {e}); damaged or truncated"
            raise DicomFileError(path, problem) from e
    element = ds.get_item(0x00080005)
    charset = _values_of(element, "CS", ()) if element is not None else ()
    values: Values = {}
    for tag, (name, vr) in TAGS.items():
        source = ds.file_meta if tag >> 16 == 0x0002 else ds
        if tag in source:
            values[name] = _values_of(source.get_item(tag), vr, tuple(map(str, charset)))
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        values["_frames"] = _frames(ds, tuple(map(str, charset)))
    return values, syntax, pixel, size
