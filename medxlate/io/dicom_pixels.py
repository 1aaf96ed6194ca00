"""Pixel values of DICOM frames in physical units: decode, invert MONOCHROME1, apply the modality LUT.

Native (uncompressed) little-endian data whose header the fast walker located is read straight from
the file into a numpy buffer (no pydicom, no copy of the file into Python objects). Everything else
(compressed syntaxes, deflate, big endian, a Modality LUT Sequence) goes through pydicom's
``pixel_array`` and its decoder plugins (pylibjpeg-libjpeg: JPEG baseline/extended/lossless;
pyjpegls: JPEG-LS; pylibjpeg-openjpeg: JPEG 2000; pylibjpeg-rle or pydicom: RLE).

Both paths give the same stored values: unused high bits are cleared (unsigned) or sign-extended
(signed) exactly like pydicom does for Bits Stored < Bits Allocated.

MONOCHROME1 (minimum = white) is converted to MONOCHROME2 by inverting the *stored* values over
their full range before the modality LUT: ``x' = smin + smax - x`` with ``[smin, smax]`` =
``[0, 2**BitsStored - 1]`` (unsigned) or ``[-2**(BitsStored-1), 2**(BitsStored-1) - 1]`` (signed).
For a linear rescale this equals inverting the output over the range the rescale maps the stored
range to. With a Modality LUT Sequence, the LUT output is inverted over its nominal range instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medxlate.errors import InputDataError
from medxlate.io.dicom_header import InstanceHeader
from medxlate.io.dicom_values import uid_name

__all__ = ["read_frames"]

_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")  # implicit / explicit VR little endian
_PIXEL_DATA = 0x7FE00010


def _stored_range(header: InstanceHeader) -> tuple[int, int]:
    bits = header.bits_stored or header.bits_allocated or 16
    if header.pixel_representation:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _native(header: InstanceHeader, frames: Sequence[int]) -> np.ndarray:
    """Stored values of ``frames`` read with numpy from native little-endian pixel data."""
    rows, cols, bits = header.rows or 0, header.columns or 0, header.bits_allocated or 0
    dtype = np.dtype(f"<{'i' if header.pixel_representation else 'u'}{bits // 8}")
    frame_bytes = rows * cols * dtype.itemsize
    offset = header.pixel_offset or 0
    out = np.empty((len(frames), rows, cols), dtype=dtype)
    with open(header.path, "rb") as fp:
        contiguous = list(frames) == list(range(frames[0], frames[0] + len(frames))) if frames else True
        if contiguous:
            fp.seek(offset + (frames[0] if frames else 0) * frame_bytes)
            got = fp.readinto(memoryview(out).cast("B"))
            if got != out.nbytes:
                raise InputDataError(
                    f"cannot decode pixels of DICOM file {header.path}: {got} of {out.nbytes} bytes of pixel data "
                    "could be read; expected a complete file (was it changed since it was scanned?)"
                )
        else:
            for k, frame in enumerate(frames):
                fp.seek(offset + frame * frame_bytes)
                fp.readinto(memoryview(out[k]).cast("B"))
    stored = header.bits_stored or bits
    if stored < bits:  # same as pydicom: shift out unused high bits (sign-extends signed data)
        np.left_shift(out, bits - stored, out=out)
        np.right_shift(out, bits - stored, out=out)
    return out


def _can_read_natively(header: InstanceHeader) -> bool:
    return (
        header.transfer_syntax in _NATIVE_LE
        and header.pixel_tag == _PIXEL_DATA
        and header.pixel_offset is not None
        and header.pixel_length is not None
        and header.bits_allocated in (8, 16, 32)
        and header.samples_per_pixel == 1
        and not header.has_modality_lut
    )


def _decode_error(header: InstanceHeader, e: Exception) -> InputDataError:
    name = uid_name(header.transfer_syntax) if header.transfer_syntax else "unknown transfer syntax"
    return InputDataError(
        f"cannot decode pixels of DICOM file {header.path} ({name}): {type(e).__name__}: {e}; expected complete "
        "pixel data in a syntax pydicom's decoder plugins read (pylibjpeg-libjpeg, pylibjpeg-openjpeg, "
        "pylibjpeg-rle, pyjpegls)"
    )


def _with_pydicom(header: InstanceHeader, frames: Sequence[int]) -> tuple[np.ndarray, Any]:
    """Stored values of ``frames`` (k, rows, cols) decoded by pydicom, and the data set."""
    import pydicom

    try:
        ds = pydicom.dcmread(header.path)
        array = ds.pixel_array
    except Exception as e:  # decoder plugins raise many types (RuntimeError, ValueError, OSError...)
        raise _decode_error(header, e) from e
    array = array.reshape(header.n_frames, header.rows or 0, header.columns or 0)
    return array[list(frames)], ds


def read_frames(header: InstanceHeader, frames: Sequence[int], out: np.ndarray) -> None:
    """Write physical values of some frames of one file into ``out``.

    Args:
        header: The file's header (from :func:`medxlate.io.dicom_header.read_header`).
        frames: 0-based frame indices to read.
        out: Float array shaped ``(len(frames), rows, columns)``; receives the values after
            MONOCHROME1 inversion and the modality LUT (RescaleSlope/Intercept per frame).

    Raises:
        InputDataError: Pixel data that cannot be decoded or is shorter than the header says.
    """
    if _can_read_natively(header):
        stored, ds = _native(header, frames), None
    else:
        stored, ds = _with_pydicom(header, frames)
    inverted = header.photometric == "MONOCHROME1"
    if ds is not None and header.has_modality_lut:
        from pydicom.pixels import apply_modality_lut

        for k in range(len(frames)):
            values = apply_modality_lut(stored[k], ds)
            out[k] = np.iinfo(values.dtype).max - values if inverted else values
        return
    if inverted:
        low, high = _stored_range(header)
        stored = (low + high) - stored.astype(np.int64)
    for k, frame in enumerate(frames):
        slope, intercept = header.rescale[frame]
        target = out[k]
        target[...] = stored[k]
        if slope != 1.0:
            target *= slope
        if intercept != 0.0:
            target += intercept
