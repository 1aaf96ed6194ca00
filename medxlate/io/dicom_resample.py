"""Resampling of a stack of slices onto a uniform, orthogonal grid (pure numpy).

Used by the DICOM loader when asked to (``on_irregular="resample"``, ``on_tilt="resample"``):

* along the slice normal, the target slices are equally spaced from the first to the last source
  slice at (about) the median source spacing, and each is a linear interpolation of the two source
  slices around it;
* across the slice plane, each source slice is first shifted by its own in-plane offset (a gantry
  tilt moves slices sideways as they advance), with bilinear interpolation; samples from outside a
  source slice take the ``fill`` value.

World coordinates are preserved: a target voxel takes the value the source data has at the same
point in patient space (linear in between slices).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["resample_stack", "shift_image"]


def _int_shift(image: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """``out[y, x] = image[y - dy, x - dx]``, ``fill`` outside."""
    rows, cols = image.shape
    out = np.full_like(image, fill)
    if abs(dy) >= rows or abs(dx) >= cols:
        return out
    ys, yd = (slice(0, rows - dy), slice(dy, rows)) if dy >= 0 else (slice(-dy, rows), slice(0, rows + dy))
    xs, xd = (slice(0, cols - dx), slice(dx, cols)) if dx >= 0 else (slice(-dx, cols), slice(0, cols + dx))
    out[yd, xd] = image[ys, xs]
    return out


def shift_image(image: np.ndarray, dy: float, dx: float, fill: float) -> np.ndarray:
    """Shift a 2D image by a fraction of pixels with bilinear interpolation.

    Args:
        image: (rows, columns) float array.
        dy: Shift along rows (down), in pixels.
        dx: Shift along columns (right), in pixels.
        fill: Value of samples taken from outside the image.

    Returns:
        ``out[y, x] = image(y - dy, x - dx)``, bilinear, same shape and dtype.
    """
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix
    out = np.zeros_like(image)
    for wy, oy in ((1.0 - fy, iy), (fy, iy + 1)):
        for wx, ox in ((1.0 - fx, ix), (fx, ix + 1)):
            weight = wy * wx
            if weight > 1e-12:
                out += np.asarray(weight, dtype=image.dtype) * _int_shift(image, oy, ox, fill)
    return out


def resample_stack(
    slices: np.ndarray, distances: np.ndarray, shifts: np.ndarray, spacing: float, fill: float
) -> tuple[np.ndarray, float]:
    """Resample slices at arbitrary positions onto equally spaced, aligned slices.

    Args:
        slices: (m, rows, columns) source slices, ordered by ``distances``.
        distances: (m,) strictly increasing positions along the slice normal (mm).
        shifts: (m, 2) in-plane offsets (dy, dx) in pixels of each source slice relative to the
            target grid (zeros when the stack is not tilted).
        spacing: Wanted distance between target slices (mm); adjusted so that the first and last
            target slices fall on the first and last source slices.
        fill: Value for samples from outside a source slice.

    Returns:
        ((k, rows, columns) target slices, their actual spacing in mm).

    Raises:
        ValueError: Mismatched shapes, non-increasing distances or a non-positive spacing.
    """
    m = slices.shape[0]
    d = np.asarray(distances, dtype=np.float64)
    if d.shape != (m,) or np.asarray(shifts).shape != (m, 2) or m < 1:
        raise ValueError(f"resample_stack: {m} slices need {m} distances and (dy, dx) shifts")
    if (m > 1 and (np.diff(d) <= 0).any()) or not spacing > 0:
        raise ValueError("resample_stack: distances must increase and spacing must be positive")
    if m == 1:
        return shift_image(slices[0], *shifts[0], fill)[None], spacing
    k = max(round(float(d[-1] - d[0]) / spacing) + 1, 2)
    step = (d[-1] - d[0]) / (k - 1)
    cache: dict[int, np.ndarray] = {}

    def source(i: int) -> np.ndarray:
        if i not in cache:
            dy, dx = shifts[i]
            cache[i] = slices[i] if dy == 0 and dx == 0 else shift_image(slices[i], float(dy), float(dx), fill)
        return cache[i]

    out = np.empty((k, *slices.shape[1:]), dtype=slices.dtype)
    for j in range(k):
        t = d[0] + j * step if j < k - 1 else d[-1]
        i = min(int(np.searchsorted(d, t, side="right")) - 1, m - 2)
        w = (t - d[i]) / (d[i + 1] - d[i])
        if w <= 1e-9:
            out[j] = source(i)
        elif w >= 1 - 1e-9:
            out[j] = source(i + 1)
        else:
            out[j] = (1.0 - w) * source(i) + w * source(i + 1)
        for stale in [c for c in cache if c < i]:  # keep memory to two shifted slices
            del cache[stale]
    return out, float(step)
