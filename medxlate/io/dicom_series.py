"""What one series' headers say about it: layout, compression, and its stack geometry (no I/O).

:func:`analyse_series` is the one place that turns the headers of a series into flags; the scanner
reports them and the loader acts on them, so both always agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medxlate.io.dicom_geometry import FLAGS, StackGeometry, analyse_stack
from medxlate.io.dicom_header import InstanceHeader
from medxlate.io.dicom_values import uid_name

__all__ = ["SeriesAnalysis", "analyse_series", "describe_series"]

_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class SeriesAnalysis:
    """Result of :func:`analyse_series`.

    Attributes:
        images: The image headers of the series, in input order.
        frames: (index into ``images``, frame index) of every frame, the indexing of ``geometry``.
        geometry: The stack geometry of the frames; None for a series without images.
        flags: Problems found (a subset of :data:`medxlate.io.dicom_geometry.FLAGS`, in that order).
        details: Flag -> human-readable description (no identifiers).
    """

    images: tuple[InstanceHeader, ...]
    frames: tuple[tuple[int, int], ...]
    geometry: StackGeometry | None
    flags: tuple[str, ...]
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        """Whether the series holds images."""
        return bool(self.images)

    def ordered_files(self, headers: Sequence[InstanceHeader]) -> tuple[Path, ...]:
        """Files of the series: those of the volume along the normal, then the others (excluded, non-image)."""
        ordered: dict[Path, None] = {}
        if self.geometry is not None:
            for i in self.geometry.order:
                ordered[self.images[self.frames[i][0]].path] = None
        for header in sorted(headers, key=lambda h: str(h.path)):
            ordered.setdefault(header.path, None)
        return tuple(ordered)


def describe_series(headers: Sequence[InstanceHeader]) -> str:
    """Name a series in messages by what a user recognises, never by identifiers.

    Args:
        headers: Headers of the series' files.

    Returns:
        ``'<description>' (<modality>, <n> files) in <folder>``.
    """
    first = headers[0]
    description = first.description or "no SeriesDescription"
    folder = os.path.commonpath([str(h.path.parent) for h in headers])
    return f"'{description}' ({first.modality or 'unknown modality'}, {len(headers)} files) in {folder}"


def _layout_flags(images: Sequence[InstanceHeader]) -> dict[str, str]:
    flags: dict[str, str] = {}
    mosaic = [h for h in images if h.mosaic_images is not None]
    if mosaic:
        count = mosaic[0].mosaic_images
        tiles = f"{count} images tiled" if count else "images tiled"
        flags["mosaic"] = f"{len(mosaic)} Siemens mosaic file(s) ({tiles} in one frame); not supported, convert first"
    problems = set()
    for h in images:
        if h.samples_per_pixel != 1 or h.photometric not in _GRAYSCALE:
            photometric = h.photometric or "missing"
            problems.add(f"PhotometricInterpretation {photometric} with {h.samples_per_pixel} sample(s) per pixel")
        if h.bits_allocated not in (8, 16, 32):
            problems.add(f"BitsAllocated {h.bits_allocated}")
        if h.pixel_tag != _PIXEL_DATA:
            problems.add("float pixel data")
    if problems:
        flags["unsupported_layout"] = "; ".join(sorted(problems)) + " (expected grayscale integer images)"
    multi = [h for h in images if h.n_frames > 1]
    if multi:
        enhanced = all(h.functional_groups for h in multi)
        kinds = "per-frame functional groups" if enhanced else "some without per-frame positions"
        n_frames = sum(h.n_frames for h in multi)
        flags["multiframe"] = f"{len(multi)} multi-frame object(s) with {n_frames} frames ({kinds})"
    compressed = sorted({h.transfer_syntax for h in images if _is_compressed(h.transfer_syntax)})
    if compressed:
        flags["compressed"] = ", ".join(uid_name(s) for s in compressed)
    if any(h.photometric == "MONOCHROME1" for h in images):
        flags["monochrome1"] = "MONOCHROME1 (minimum is white): inverted to MONOCHROME2 when loaded"
    return flags


def _is_compressed(syntax: str) -> bool:
    from pydicom.uid import UID

    uid = UID(syntax)
    return bool(uid.is_transfer_syntax and (uid.is_compressed or uid.is_deflated))


def analyse_series(headers: Sequence[InstanceHeader]) -> SeriesAnalysis:
    """Flags and stack geometry of the headers of one series.

    Args:
        headers: Headers of the files of one series (any order).

    Returns:
        The analysis, see :class:`SeriesAnalysis`.
    """
    images = tuple(h for h in headers if h.is_image)
    if not images:
        first = headers[0]
        what = uid_name(first.sop_class_uid) if first.sop_class_uid else "objects without a SOP class"
        detail = f"{what} ({first.modality or 'no modality'}): not an image series"
        return SeriesAnalysis((), (), None, ("non_image",), {"non_image": detail})
    flags = _layout_flags(images)
    frames = tuple((i, f) for i, h in enumerate(images) for f in range(h.n_frames))
    geometry = analyse_stack(
        [images[i].positions[f] for i, f in frames],
        [images[i].orientations[f] for i, f in frames],
        [(images[i].rows or 0, images[i].columns or 0) for i, _ in frames],
        [images[i].is_localizer for i, _ in frames],
        pixel_spacing=images[0].pixel_spacing,
    )
    for flag in geometry.flags:
        flags[flag] = f"{flags[flag]}; {geometry.details[flag]}" if flag in flags else geometry.details[flag]
    names = tuple(f for f in FLAGS if f in flags)
    return SeriesAnalysis(images, frames, geometry, names, {f: flags[f] for f in names})
