"""NumPy/SciPy/scikit-image transcription of the SynthRAD2025 challenge's image metrics, in float64.

Transcribed line by line from ``image_metrics.py`` of https://github.com/SynthRAD2025/evaluation at
commit 17cac47 (MIT licence, Copyright (c) 2024 SynthRAD2025): ``ImageMetrics.score_patient`` with
its ``mae``, ``psnr(use_population_range=True)``, ``ms_ssim`` and ``structural_similarity_at_scale``
(uniform window, default arguments). Only the unused branches (Gaussian weights, no mask, the
unmasked MS-SSIM value) are left out; the inputs are cast to float64 first. It never calls medxlate.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter
from scipy.signal import fftconvolve
from skimage.metrics import peak_signal_noise_ratio
from skimage.util.arraycrop import crop

DYNAMIC_RANGE = [-1024.0, 3071.0]


def score_patient(gt_img: np.ndarray, synthetic_ct: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """``ImageMetrics.score_patient`` of the challenge."""
    gt_img, synthetic_ct = gt_img.astype(np.float64), synthetic_ct.astype(np.float64)
    assert gt_img.shape == synthetic_ct.shape == mask.shape
    ground_truth = np.where(mask == 0, -1024, gt_img)
    prediction = np.where(mask == 0, -1024, synthetic_ct)
    return {
        "mae": _mae(ground_truth, prediction, mask),
        "psnr": _psnr(ground_truth, prediction, mask),
        "ms_ssim": _ms_ssim(ground_truth, prediction, mask),
    }


def _mae(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    mask = np.where(mask > 0, 1.0, 0.0)
    return float(np.sum(np.abs(gt * mask - pred * mask)) / mask.sum())


def _psnr(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    mask = np.where(mask > 0, 1.0, 0.0)
    gt = np.clip(gt, a_min=DYNAMIC_RANGE[0], a_max=DYNAMIC_RANGE[1])
    pred = np.clip(pred, a_min=DYNAMIC_RANGE[0], a_max=DYNAMIC_RANGE[1])
    dynamic_range = DYNAMIC_RANGE[1] - DYNAMIC_RANGE[0]
    return float(peak_signal_noise_ratio(gt[mask == 1], pred[mask == 1], data_range=dynamic_range))


def _ssim_at_scale(im1: np.ndarray, im2: np.ndarray, weight: float, data_range: float) -> np.ndarray:
    """``structural_similarity_at_scale(..., luminance/contrast/structure_weight=weight, full=True)[1]``."""
    win_size = 7
    filter_args = {"size": win_size}
    np_ = win_size**im1.ndim
    cov_norm = np_ / (np_ - 1)
    ux = uniform_filter(im1, **filter_args)
    uy = uniform_filter(im2, **filter_args)
    uxx = uniform_filter(im1 * im1, **filter_args)
    uyy = uniform_filter(im2 * im2, **filter_args)
    uxy = uniform_filter(im1 * im2, **filter_args)
    vx = cov_norm * (uxx - ux * ux)
    vxsqrt = np.clip(vx, a_min=0, a_max=None) ** 0.5
    vy = cov_norm * (uyy - uy * uy)
    vysqrt = np.clip(vy, a_min=0, a_max=None) ** 0.5
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    c3 = c2 / 2
    lum = np.clip((2 * ux * uy + c1) / (ux * ux + uy * uy + c1), a_min=0, a_max=None)
    con = np.clip((2 * vxsqrt * vysqrt + c2) / (vx + vy + c2), a_min=0, a_max=None)
    struc = np.clip((vxy + c3) / (vxsqrt * vysqrt + c3), a_min=0, a_max=None)
    return (lum**weight) * (con**weight) * (struc**weight)


def _ms_ssim(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    gt = np.clip(gt, min(DYNAMIC_RANGE), max(DYNAMIC_RANGE))
    pred = np.clip(pred, min(DYNAMIC_RANGE), max(DYNAMIC_RANGE))
    mask = np.where(mask > 0, 1.0, 0.0)
    gt = np.where(mask == 0, min(DYNAMIC_RANGE), gt)
    pred = np.where(mask == 0, min(DYNAMIC_RANGE), pred)
    gt = gt - min(DYNAMIC_RANGE)
    pred = pred - min(DYNAMIC_RANGE)
    dynamic_range = DYNAMIC_RANGE[1] - DYNAMIC_RANGE[0]
    # the reference reassigns scale_weights before choosing luminance_weights, so both are these
    scale_weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    luminance_weights = scale_weights
    downsample_filter = np.ones((2, 2, 2)) / 8
    target_size = 97
    pad_values = [
        (
            np.clip((target_size - dim) // 2, a_min=0, a_max=None),
            np.clip(target_size - dim - (target_size - dim) // 2, a_min=0, a_max=None),
        )
        for dim in gt.shape
    ]
    gt = np.pad(gt, pad_values, mode="edge")
    pred = np.pad(pred, pad_values, mode="edge")
    mask = np.pad(mask, pad_values, mode="edge")
    values = []
    for level in range(len(scale_weights)):
        assert luminance_weights[level] == scale_weights[level]
        ssim_map = _ssim_at_scale(gt, pred, scale_weights[level], dynamic_range)
        pad = 3
        values.append(crop(ssim_map, pad)[crop(mask, pad).astype(bool)].mean(dtype=np.float64))
        filtered = [fftconvolve(im, downsample_filter, mode="same") for im in [gt, pred]]
        gt, pred, mask = [x[::2, ::2, ::2] for x in [*filtered, mask]]
    return float(np.prod([np.clip(x, a_min=0, a_max=1) for x in values]))
