"""Body masks from CT: threshold, keep the largest connected component (drops the table), fill holes."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def body_mask_from_ct(hu: np.ndarray, threshold: float = -500.0) -> np.ndarray:
    """Boolean body mask of a CT volume (X, Y, Z) in HU.

    Args:
        hu: CT intensities in HU.
        threshold: Voxels above it are tissue candidates.

    Returns:
        Boolean array of the same shape: the largest 3D component after a small opening, with
        holes (lungs, bowel gas) filled slice by slice.
    """
    candidate = ndimage.binary_opening(hu > threshold, structure=np.ones((3, 3, 1), dtype=bool))
    labels, count = ndimage.label(candidate)
    if count == 0:
        return np.zeros(hu.shape, dtype=bool)
    sizes = ndimage.sum_labels(candidate, labels, index=np.arange(1, count + 1))
    body = labels == (int(np.argmax(sizes)) + 1)
    for z in range(body.shape[2]):
        body[:, :, z] = ndimage.binary_fill_holes(body[:, :, z])
    return body
