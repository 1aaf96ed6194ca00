"""Geometry of a stack of DICOM frames: which frames form the volume, in which order, and what is wrong.

One pure function, :func:`analyse_stack`, shared by the scanner (flags) and the loader (order,
exclusions, errors, resampling). Inputs are per-frame ImagePositionPatient (LPS mm),
ImageOrientationPatient (row and column direction cosines) and (rows, columns); no I/O.

Rules (tolerances are module constants):

* Frames whose ImageType says LOCALIZER are set aside, unless every frame does (a localizer
  series: flagged, not excluded).
* The remaining frames are grouped by orientation and size; the largest group is the volume, the
  others are excluded (a scout of another orientation, a reformat of another size). Two largest
  groups of equal size are not guessed between: ``unsupported_layout``.
* Frames are ordered by their position along the slice normal ``row_dir x col_dir``.
* Positions closer than :data:`DUPLICATE_ATOL_MM` along the normal are duplicates. Between distinct
  positions, the median gap is the slice spacing; a gap over 1.5 spacings is a ``gap`` (missing
  slices), any other gap off by more than 5% of the spacing (+1 µm) is ``irregular_spacing``, and so
  are positions that drift from a uniform grid by more than that.
* Positions that move across the slice plane (perpendicular to the normal) by more than a quarter
  of the smallest pixel spacing over the stack are a ``gantry_tilt``.

Slice numbers in messages are 1-based positions in the order along the normal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FLAGS", "StackGeometry", "analyse_stack"]

FLAGS = (
    "non_image",
    "unsupported_layout",
    "mosaic",
    "multiframe",
    "compressed",
    "monochrome1",
    "localizer",
    "mixed_orientation",
    "mixed_size",
    "duplicate_positions",
    "gap",
    "irregular_spacing",
    "gantry_tilt",
)
"""Every flag a series can carry, in display order."""

ORIENTATION_ATOL = 1e-4  # direction cosines of one stack agree to this
DUPLICATE_ATOL_MM = 1e-3  # positions closer than this along the normal are the same position
SPACING_RTOL = 0.05  # a gap may differ from the median spacing by 5% ...
SPACING_ATOL_MM = 1e-3  # ... plus rounding of ImagePositionPatient strings
GAP_FACTOR = 1.5  # a gap over 1.5 spacings means missing slices
TILT_PIXEL_FRACTION = 0.25  # in-plane drift over the stack tolerated, in pixels
_MAX_EXAMPLES = 3


@dataclass(frozen=True)
class StackGeometry:
    """Result of :func:`analyse_stack`.

    Attributes:
        order: Input indices of the frames forming the volume, ordered along the slice normal
            (duplicates adjacent, lowest input index first).
        excluded: Input indices set aside (localizers, other orientation or size), ascending.
        orientation: Row and column direction cosines (6 floats) of the volume, None if unknown.
        distances: Position of each frame of ``order`` along the normal (mm).
        spacing: Median distance between distinct positions (mm); None for fewer than 2.
        duplicates: Groups of positions in ``order`` (0-based) that share a position.
        tilt_deg: Angle between the stacking direction and the normal, when tilted.
        flags: Problems found, a subset of :data:`FLAGS`, in that order.
        details: Flag -> human-readable description (no identifiers).
    """

    order: tuple[int, ...]
    excluded: tuple[int, ...]
    orientation: tuple[float, ...] | None
    distances: tuple[float, ...]
    spacing: float | None
    duplicates: tuple[tuple[int, ...], ...] = ()
    tilt_deg: float | None = None
    flags: tuple[str, ...] = ()
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal ``row_dir x col_dir`` (LPS); z when the orientation is unknown."""
        if self.orientation is None:
            return np.array([0.0, 0.0, 1.0])
        o = np.asarray(self.orientation)
        n = np.cross(o[:3], o[3:])
        return n / np.linalg.norm(n)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _ordered(flags: dict[str, str]) -> tuple[tuple[str, ...], dict[str, str]]:
    names = tuple(f for f in FLAGS if f in flags)
    return names, {f: flags[f] for f in names}


def _same_orientation(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, atol=ORIENTATION_ATOL))


def _group(candidates: list[int], orientations: np.ndarray, sizes: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Group frames by (orientation within tolerance, size), largest group first (stable)."""
    groups: list[list[int]] = []
    for i in candidates:
        for g in groups:
            j = g[0]
            if sizes[i] == sizes[j] and _same_orientation(orientations[i], orientations[j]):
                g.append(i)
                break
        else:
            groups.append([i])
    return sorted(groups, key=len, reverse=True)


def _exclusions(
    main: list[int], n: int, localizer: Sequence[bool], orientations: np.ndarray, sizes: Sequence[tuple[int, int]]
) -> tuple[list[int], dict[str, str]]:
    ref = main[0]
    excluded = [i for i in range(n) if i not in set(main)]
    flags: dict[str, str] = {}
    if not excluded:
        return excluded, flags
    other_orientation = [i for i in excluded if not _same_orientation(orientations[i], orientations[ref])]
    other_size = [i for i in excluded if sizes[i] != sizes[ref]]
    typed = [i for i in excluded if localizer[i]]
    parts = [f"{len(typed)} marked LOCALIZER"] if typed else []
    if other_orientation:
        parts.append(f"{len(other_orientation)} of another orientation")
        flags["mixed_orientation"] = f"{len(other_orientation)} of {n} images have another orientation"
    if other_size:
        found = sorted({f"{sizes[i][0]}x{sizes[i][1]}" for i in other_size})
        parts.append(f"{len(other_size)} of another size")
        flags["mixed_size"] = (
            f"{len(other_size)} of {n} images are {', '.join(found)} where the stack is {sizes[ref][0]}x{sizes[ref][1]}"
        )
    flags["localizer"] = f"{len(excluded)} of {n} images set aside as localizers ({', '.join(parts)})"
    return excluded, flags


def _spacing_flags(d: np.ndarray, unique: list[int], spacing: float, order_len: int) -> dict[str, str]:
    """Gap and irregular-spacing flags from the distinct positions ``d[unique]`` along the normal."""
    flags: dict[str, str] = {}
    gaps = np.diff(d[unique])
    tol = SPACING_RTOL * spacing + SPACING_ATOL_MM
    big = np.flatnonzero(gaps > GAP_FACTOR * spacing)
    odd = np.flatnonzero((np.abs(gaps - spacing) > tol) & (gaps <= GAP_FACTOR * spacing))

    def where(k: int) -> str:
        slices = f"slices {unique[k] + 1} and {unique[k + 1] + 1}"
        return f"between {slices}: {_fmt(gaps[k])} mm where {_fmt(spacing)} mm expected"

    of = f" (of {order_len}, ordered along the slice normal)"
    if big.size:
        examples = "; ".join(f"gap {where(int(k))}" for k in big[:_MAX_EXAMPLES])
        more = f"; {big.size - _MAX_EXAMPLES} more" if big.size > _MAX_EXAMPLES else ""
        flags["gap"] = f"{big.size} gap(s){of}: {examples}{more}"
    if odd.size:
        examples = "; ".join(f"spacing {where(int(k))}" for k in odd[:_MAX_EXAMPLES])
        more = f"; {odd.size - _MAX_EXAMPLES} more" if odd.size > _MAX_EXAMPLES else ""
        flags["irregular_spacing"] = f"{odd.size} irregular spacing(s){of}: {examples}{more}"
    elif not big.size and len(unique) > 2:
        u = d[unique]
        drift = np.abs(u - np.linspace(u[0], u[-1], len(u))).max()
        if drift > tol:
            flags["irregular_spacing"] = (
                f"slice positions drift up to {_fmt(drift)} mm from a uniform grid of {_fmt(spacing)} mm"
            )
    return flags


def _tilt(positions: np.ndarray, normal: np.ndarray, pixel_spacing: float) -> tuple[float, float] | None:
    """(largest in-plane drift in mm, tilt angle in degrees) when the stack is tilted, else None."""
    rel = positions - positions[0]
    along = rel @ normal
    perp = rel - along[:, None] * normal
    drift = float(np.linalg.norm(perp, axis=1).max())
    if drift <= TILT_PIXEL_FRACTION * pixel_spacing:
        return None
    denominator = float((along**2).sum())
    shear = (perp * along[:, None]).sum(axis=0) / denominator if denominator > 0 else np.zeros(3)
    return drift, math.degrees(math.atan(float(np.linalg.norm(shear))))


def analyse_stack(
    positions: Sequence[Sequence[float] | None],
    orientations: Sequence[Sequence[float] | None],
    sizes: Sequence[tuple[int, int]],
    localizer: Sequence[bool],
    pixel_spacing: tuple[float, float] | None = None,
) -> StackGeometry:
    """Order frames into a volume and find what is wrong with their geometry.

    Args:
        positions: Per frame, ImagePositionPatient (LPS mm) or None when missing.
        orientations: Per frame, ImageOrientationPatient (6 direction cosines) or None.
        sizes: Per frame, (rows, columns).
        localizer: Per frame, whether ImageType contains LOCALIZER.
        pixel_spacing: (row, column) spacing in mm, sets the tilt tolerance (1 mm if None).

    Returns:
        The stack geometry and its flags, see :class:`StackGeometry`.

    Raises:
        ValueError: No frames, or arguments of different lengths.
    """
    n = len(sizes)
    if n == 0 or not len(positions) == len(orientations) == len(localizer) == n:
        raise ValueError(f"analyse_stack needs one position, orientation, size and localizer flag per frame (got {n})")
    if any(p is None for p in positions) or any(o is None for o in orientations):
        if n == 1:
            return StackGeometry((0,), (), None if orientations[0] is None else tuple(orientations[0]), (0.0,), None)
        missing = sum(p is None or o is None for p, o in zip(positions, orientations, strict=True))
        detail = f"{missing} of {n} images lack ImagePositionPatient/ImageOrientationPatient: they cannot be stacked"
        flag = "unsupported_layout"
        return StackGeometry(tuple(range(n)), (), None, (), None, flags=(flag,), details={flag: detail})
    pos = np.asarray(positions, dtype=np.float64)
    ori = np.asarray(orientations, dtype=np.float64)
    candidates = [i for i in range(n) if not localizer[i]] or list(range(n))
    groups = _group(candidates, ori, sizes)
    flags: dict[str, str] = {}
    if len(groups) > 1 and len(groups[0]) == len(groups[1]):
        same = _same_orientation(ori[groups[0][0]], ori[groups[1][0]])
        flags["mixed_size" if same else "mixed_orientation"] = (
            f"{len(groups)} stacks of different orientation or size, the largest two of {len(groups[0])} images each"
        )
        flags["unsupported_layout"] = "no single stack to read: " + next(iter(flags.values()))
        names, details = _ordered(flags)
        return StackGeometry(tuple(range(n)), (), None, (), None, flags=names, details=details)
    main = groups[0]
    excluded, flags = _exclusions(main, n, localizer, ori, sizes)
    if all(localizer):
        flags["localizer"] = f"all {n} images are localizers (ImageType LOCALIZER)"
    o = ori[main[0]]
    normal = np.cross(o[:3], o[3:])
    normal /= np.linalg.norm(normal)
    order = sorted(main, key=lambda i: (float(pos[i] @ normal), i))
    d = pos[order] @ normal
    duplicates: list[tuple[int, ...]] = []
    unique = [0]
    for k in range(1, len(order)):
        if d[k] - d[unique[-1]] <= DUPLICATE_ATOL_MM:
            if duplicates and duplicates[-1][0] == unique[-1]:
                duplicates[-1] = (*duplicates[-1], k)
            else:
                duplicates.append((unique[-1], k))
        else:
            unique.append(k)
    if duplicates:
        shown = "; ".join(
            f"slices {', '.join(str(k + 1) for k in g[:-1])} and {g[-1] + 1} share a position"
            for g in duplicates[:_MAX_EXAMPLES]
        )
        more = f"; {len(duplicates) - _MAX_EXAMPLES} more" if len(duplicates) > _MAX_EXAMPLES else ""
        flags["duplicate_positions"] = f"{len(duplicates)} duplicate position(s): {shown}{more}"
    spacing = float(np.median(np.diff(d[unique]))) if len(unique) > 1 else None
    tilt = None
    if spacing is not None:
        flags.update(_spacing_flags(d, unique, spacing, len(order)))
        tilt = _tilt(pos[[order[k] for k in unique]], normal, min(pixel_spacing) if pixel_spacing else 1.0)
        if tilt is not None:
            flags["gantry_tilt"] = (
                f"slice positions move {_fmt(tilt[0])} mm across the slice plane over {_fmt(d[-1] - d[0])} mm "
                f"along its normal (gantry tilt of about {tilt[1]:.2f} degrees)"
            )
    names, details = _ordered(flags)
    return StackGeometry(
        order=tuple(order),
        excluded=tuple(excluded),
        orientation=tuple(float(v) for v in o),
        distances=tuple(float(v) for v in d),
        spacing=spacing,
        duplicates=tuple(duplicates),
        tilt_deg=None if tilt is None else tilt[1],
        flags=names,
        details=details,
    )
