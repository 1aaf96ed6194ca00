"""The DICOM attributes medxlate reads from headers, and their decoding from raw bytes.

One table (:data:`TAGS`) and one decoder (:func:`decode`) serve both header readers (the fast walker
and pydicom), so the two cannot disagree. Accessors (:func:`floats`, :func:`integer`, :func:`text`)
turn decoded values into Python numbers and raise ``ValueError`` with the attribute name and value
when they are not what DICOM says (e.g. ImagePositionPatient ``'n/a'``).
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

__all__ = ["FG_STOP", "IDENTIFIER_TAGS", "TAGS", "Values", "decode", "floats", "integer", "text", "texts", "uid_name"]

Values = dict[str, Any]

TAGS: dict[int, tuple[str, str]] = {
    0x00020002: ("MediaStorageSOPClassUID", "UI"),
    0x00080005: ("SpecificCharacterSet", "CS"),
    0x00080008: ("ImageType", "CS"),
    0x00080016: ("SOPClassUID", "UI"),
    0x00080020: ("StudyDate", "DA"),
    0x00080050: ("AccessionNumber", "SH"),
    0x00080060: ("Modality", "CS"),
    0x00080080: ("InstitutionName", "LO"),
    0x0008103E: ("SeriesDescription", "LO"),
    0x00100010: ("PatientName", "PN"),
    0x00100020: ("PatientID", "LO"),
    0x00100030: ("PatientBirthDate", "DA"),
    0x00100040: ("PatientSex", "CS"),
    0x00180050: ("SliceThickness", "DS"),
    0x00180088: ("SpacingBetweenSlices", "DS"),
    0x00181164: ("ImagerPixelSpacing", "DS"),
    0x00190010: ("PrivateCreator19", "LO"),
    0x0019100A: ("NumberOfImagesInMosaic", "US"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200010: ("StudyID", "SH"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00200032: ("ImagePositionPatient", "DS"),
    0x00200037: ("ImageOrientationPatient", "DS"),
    0x00200052: ("FrameOfReferenceUID", "UI"),
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280030: ("PixelSpacing", "DS"),
    0x00280100: ("BitsAllocated", "US"),
    0x00280101: ("BitsStored", "US"),
    0x00280103: ("PixelRepresentation", "US"),
    0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"),
    0x00283000: ("ModalityLUTSequence", "SQ"),
}
FG_STOP = frozenset({0x52009229, 0x52009230})  # Shared/PerFrameFunctionalGroupsSequence: read with pydicom
IDENTIFIER_TAGS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "InstitutionName",
    "StudyInstanceUID",
    "StudyID",
)

_STRING_VRS = frozenset(
    ["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"]
)
_TEXT_VRS = frozenset({"LT", "ST", "UT"})
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}


@functools.lru_cache(maxsize=256)
def uid_name(uid: str) -> str:
    """pydicom's name of a UID.

    Args:
        uid: A UID string.

    Returns:
        Its name, e.g. ``"CT Image Storage"``; the UID itself when unknown.
    """
    from pydicom.uid import UID

    return str(UID(uid).name)


def _decode_text(data: bytes, charset: tuple[str, ...]) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        from pydicom.charset import convert_encodings, decode_bytes

        return decode_bytes(data, convert_encodings(list(charset) or ["ISO_IR 6"]), set())


def decode(
    vr: str | None, data: bytes, expected_vr: str, *, little_endian: bool = True, charset: tuple[str, ...] = ()
) -> tuple[Any, ...]:
    """Decode one raw element value.

    Args:
        vr: VR written in the file (None for implicit VR).
        data: The raw value bytes.
        expected_vr: The dictionary VR, used for implicit VR, ``UN`` and ``OB``/``OW`` values.
        little_endian: Byte order of binary values.
        charset: The data set's SpecificCharacterSet values, to decode non-ASCII text.

    Returns:
        A tuple of ``str`` for text VRs (split at backslashes, padding stripped), of numbers for
        binary VRs, empty for sequences.
    """
    if vr is None or vr in ("UN", "OB", "OW") or (vr not in _STRING_VRS and vr not in _NUMBER_FORMATS):
        vr = expected_vr
    if vr in _STRING_VRS:
        value = _decode_text(data, charset).rstrip("\0 ")
        if vr in _TEXT_VRS:
            return (value.strip(),)
        return tuple([part.strip(" \0") for part in value.split("\\")])
    if vr in _NUMBER_FORMATS:
        code = _NUMBER_FORMATS[vr]
        count = len(data) // struct.calcsize(code)
        return struct.unpack(f"{'<' if little_endian else '>'}{count}{code}", data[: count * struct.calcsize(code)])
    return ()


def texts(values: Values, name: str) -> tuple[str, ...]:
    """All non-empty values of an attribute as strings.

    Args:
        values: Decoded values by keyword.
        name: The keyword.

    Returns:
        The values (empty when absent).
    """
    items = values.get(name)
    if not items:
        return ()
    return tuple([v for v in items if v] if isinstance(items[0], str) else [str(v) for v in items])


def text(values: Values, name: str) -> str:
    """The value of an attribute as one string.

    Args:
        values: Decoded values by keyword.
        name: The keyword.

    Returns:
        The value ('' when absent); multiple values joined with a backslash.
    """
    return "\\".join(texts(values, name))


def _shown(values: Values, name: str) -> str:
    shown = "\\".join(str(v) for v in values.get(name, ()))
    return repr(shown if len(shown) <= 60 else shown[:57] + "...")


def integer(values: Values, name: str) -> int | None:
    """The first value of an attribute as an int.

    Args:
        values: Decoded values by keyword.
        name: The keyword.

    Returns:
        The integer, None when absent or empty.

    Raises:
        ValueError: The value is not an integer.
    """
    items = values.get(name)
    if items and type(items[0]) is int:
        return items[0]
    items = texts(values, name)
    if not items:
        return None
    try:
        number = float(items[0])
    except ValueError:
        number = math.nan
    if not number.is_integer():
        raise ValueError(f"{name} is {_shown(values, name)}; expected an integer")
    return int(number)


def floats(values: Values, name: str, n: int) -> tuple[float, ...] | None:
    """The values of an attribute as ``n`` floats.

    Args:
        values: Decoded values by keyword.
        name: The keyword.
        n: How many numbers DICOM prescribes (e.g. 3 for ImagePositionPatient).

    Returns:
        The numbers, None when absent or empty.

    Raises:
        ValueError: Not ``n`` finite numbers.
    """
    items = texts(values, name)
    if not items:
        return None
    try:
        numbers = tuple(float(v) for v in items)
    except ValueError:
        numbers = ()
    if len(numbers) != n or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{name} is {_shown(values, name)}; expected {n} finite number(s)")
    return numbers
