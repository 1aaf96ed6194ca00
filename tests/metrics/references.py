"""Smooth random test images and numpy/scikit-image references for the metric tests."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

SHAPE_2D = (32, 40)
SHAPE_3D = (24, 28, 20)


def smooth_pair(
    shape: tuple[int, ...], batch: int, channels: int, offset: float, scale: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """float32 (target, pred) of shape (batch, channels, *shape): Gaussian-filtered noise plus an offset.

    The prediction is the target plus finer smooth noise, so SSIM lands in a realistic 0.6-0.95.
    """
    rng = np.random.default_rng(seed)
    full = (batch, channels, *shape)
    sigma_coarse = (0, 0, *([2.0] * len(shape)))
    sigma_fine = (0, 0, *([1.0] * len(shape)))
    target = offset + 5 * scale * gaussian_filter(rng.standard_normal(full), sigma_coarse)
    pred = target + scale * gaussian_filter(rng.standard_normal(full), sigma_fine)
    return target.astype(np.float32), pred.astype(np.float32)


def skimage_ssim_map(pred: np.ndarray, target: np.ndarray, data_range: float, sigma: float = 1.5) -> np.ndarray:
    """scikit-image's full SSIM map of one channel, computed in float64 (Wang et al. settings)."""
    _, full_map = structural_similarity(
        pred.astype(np.float64),
        target.astype(np.float64),
        gaussian_weights=True,
        sigma=sigma,
        use_sample_covariance=False,
        data_range=data_range,
        full=True,
    )
    return full_map


def skimage_ssim(pred: np.ndarray, target: np.ndarray, data_range: float, sigma: float = 1.5) -> float:
    """scikit-image's mean SSIM of one channel, computed in float64 (Wang et al. settings)."""
    return float(
        structural_similarity(
            pred.astype(np.float64),
            target.astype(np.float64),
            gaussian_weights=True,
            sigma=sigma,
            use_sample_covariance=False,
            data_range=data_range,
        )
    )


def cropped_masked_mean(full_map: np.ndarray, mask: np.ndarray, radius: int) -> float:
    """Mean of an SSIM map over mask voxels at least ``radius`` from every border."""
    inner = tuple(slice(radius, n - radius) for n in full_map.shape)
    selected = full_map[inner][mask[inner]]
    return float(selected.mean()) if selected.size else float("nan")
