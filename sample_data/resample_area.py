"""Exact in-plane area-averaging resampling with the matching NIfTI affine.

Used by ``make_sample_data.py``. Each output voxel is the average of the source over the
output voxel's own footprint (a box of ``factor`` source voxels per in-plane axis, fractional
overlaps weighted by their length), so

* the world position of an output voxel centre is the centre of the region it averages, and the
  new affine is ``source_affine @ M`` with ``M = [[f0, 0, 0, s0], [0, f1, 0, s1], [0, 0, 1, 0],
  [0, 0, 0, 1]]`` (``f`` = factor, ``s`` = continuous source index of output voxel 0);
* the integral of the image is preserved and a homogeneous region keeps its value exactly;
* the box filter is the anti-aliasing filter (no separate Gaussian pre-filter is needed).

Parts of a footprint outside the source array take a fill value (air). The slice axis (axis 2)
is never resampled. The taps are summed in a fixed order, so results are bit-reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InplaneGrid:
    """Output grid of an in-plane area resampling; axis 2 (slices) is kept as is.

    Attributes:
        factor: output spacing / source spacing for axes 0 and 1.
        start: continuous source voxel index of the centre of output voxel 0, axes 0 and 1.
        shape: output size along axes 0 and 1.
    """

    factor: tuple[float, float]
    start: tuple[float, float]
    shape: tuple[int, int]

    def index_matrix(self) -> np.ndarray:
        """Return the 4x4 map from output voxel index to continuous source voxel index."""
        m = np.eye(4)
        for ax in (0, 1):
            m[ax, ax] = self.factor[ax]
            m[ax, 3] = self.start[ax]
        return m

    def affine(self, source_affine: np.ndarray) -> np.ndarray:
        """Return the output affine (output voxel index -> world mm) for a source affine."""
        return np.asarray(source_affine, dtype=np.float64) @ self.index_matrix()


def plan_inplane_grid(
    mask: np.ndarray,
    spacing: tuple[float, float],
    out_spacing: float,
    margin_mm: float,
    multiple: int,
) -> InplaneGrid:
    """Plan an output grid covering the in-plane bounding box of ``mask`` plus a margin.

    The size along each in-plane axis is rounded up to a multiple of ``multiple``; the grid is
    centred on the bounding box, so the extra room is split evenly on both sides.

    Args:
        mask: boolean array (X, Y, Z); any voxel set in any slice counts.
        spacing: source voxel size (mm) along axes 0 and 1.
        out_spacing: output voxel size (mm) along axes 0 and 1.
        margin_mm: margin added on each side of the bounding box.
        multiple: the in-plane output sizes are multiples of this.

    Returns:
        The planned grid.

    Raises:
        ValueError: if ``mask`` is empty.
    """
    if not mask.any():
        raise ValueError("plan_inplane_grid: mask is empty, no bounding box to crop to")
    footprint = mask.any(axis=2)
    factors, starts, sizes = [], [], []
    for ax in (0, 1):
        hits = np.nonzero(footprint.any(axis=1 - ax))[0]
        lo, hi = int(hits[0]), int(hits[-1])
        extent_mm = (hi - lo + 1) * spacing[ax] + 2.0 * margin_mm
        n_out = multiple * math.ceil(extent_mm / out_spacing / multiple)
        factor = out_spacing / spacing[ax]
        factors.append(factor)
        starts.append((lo + hi) / 2.0 - (n_out - 1) / 2.0 * factor)
        sizes.append(n_out)
    return InplaneGrid(factor=(factors[0], factors[1]), start=(starts[0], starts[1]), shape=(sizes[0], sizes[1]))


def area_weights(n_in: int, start: float, factor: float, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the taps of a 1D box (area) average from ``n_in`` to ``n_out`` samples.

    Output sample ``o`` averages the source interval ``[c - factor/2, c + factor/2]`` with
    ``c = start + o * factor`` in continuous source index units (source voxel ``n`` covers
    ``[n - 0.5, n + 0.5]``).

    Args:
        n_in: number of source samples (only used to document the valid range).
        start: continuous source index of output sample 0.
        factor: footprint length in source samples (> 0).
        n_out: number of output samples.

    Returns:
        ``(index, weight)``, both (n_out, taps): source indices (may fall outside
        ``[0, n_in)``, where the caller supplies a fill value) and weights; each row of
        weights sums to 1.
    """
    del n_in  # indices outside the array are handled by the caller's padding
    centres = start + factor * np.arange(n_out, dtype=np.float64)
    lo, hi = centres - factor / 2.0, centres + factor / 2.0
    first = np.floor(lo + 0.5).astype(np.int64)
    taps = math.ceil(factor) + 1
    index = first[:, None] + np.arange(taps)[None, :]  # (n_out, taps)
    left = np.maximum(lo[:, None], index - 0.5)
    right = np.minimum(hi[:, None], index + 0.5)
    weight = np.clip(right - left, 0.0, None) / factor
    return index, weight


def _resample_axis(vol: np.ndarray, axis: int, index: np.ndarray, weight: np.ndarray, fill: float) -> np.ndarray:
    """Apply 1D taps from :func:`area_weights` along ``axis``, padding with ``fill``."""
    pad_lo = max(0, -int(index.min()))
    pad_hi = max(0, int(index.max()) - (vol.shape[axis] - 1))
    pad = [(0, 0)] * vol.ndim
    pad[axis] = (pad_lo, pad_hi)
    padded = np.pad(vol.astype(np.float64, copy=False), pad, constant_values=fill)
    bshape = [1] * vol.ndim
    bshape[axis] = index.shape[0]
    out = np.zeros((*vol.shape[:axis], index.shape[0], *vol.shape[axis + 1 :]), dtype=np.float64)
    for t in range(index.shape[1]):  # fixed summation order: bit-reproducible
        out += weight[:, t].reshape(bshape) * np.take(padded, index[:, t] + pad_lo, axis=axis)
    return out


def resample_inplane(vol: np.ndarray, grid: InplaneGrid, fill: float) -> np.ndarray:
    """Area-average a volume (X, Y, Z) onto ``grid`` (axes 0 and 1); float64 result.

    Args:
        vol: source volume (X, Y, Z).
        grid: output grid from :func:`plan_inplane_grid` (or built by hand).
        fill: value of the (virtual) source outside the array, e.g. -1024 HU for CT.

    Returns:
        Array (grid.shape[0], grid.shape[1], Z), float64.
    """
    out = vol
    for ax in (0, 1):
        index, weight = area_weights(vol.shape[ax], grid.start[ax], grid.factor[ax], grid.shape[ax])
        out = _resample_axis(out, ax, index, weight, fill)
    return out
