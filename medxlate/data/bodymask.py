"""Body masks from CT: threshold, keep the largest connected component (drops the table), fill holes.

:func:`body_mask_from_ct` works on an array whose third axis is axial; :func:`body_mask_volume` on a
CT with its affine, in any orientation.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
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


def body_mask_volume(ct: MetaTensor, threshold: float = -500.0) -> MetaTensor:
    """Body mask of a ``(1, X, Y, Z)`` CT in HU, with its affine.

    The CT is reoriented to RAS first, so the hole filling of :func:`body_mask_from_ct` runs over
    axial slices whatever the acquisition's orientation; the mask comes back on that RAS grid
    (same voxels, reordered), its affine saying where.

    Args:
        ct: CT with its voxel-to-RAS affine.
        threshold: Voxels above it (HU) are tissue candidates.

    Returns:
        ``(1, X', Y', Z')`` uint8 mask (1 inside the body) with the RAS-oriented affine.
    """
    from medxlate.transforms.spatial import to_canonical

    oriented = to_canonical(ct)
    mask = body_mask_from_ct(oriented[0].detach().cpu().numpy(), threshold=threshold)
    return MetaTensor(torch.from_numpy(mask.astype(np.uint8))[None], affine=oriented.affine)
