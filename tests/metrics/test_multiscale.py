"""ms_ssim against a float64 NumPy/SciPy transcription of Wang et al. 2003 (Gaussian-window SSIM terms)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medxlate.errors import InputDataError
from medxlate.metrics import ms_ssim
from tests.metrics.references import smooth_pair

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def reference_ms_ssim(
    pred: np.ndarray, target: np.ndarray, data_range: float, weights: tuple[float, ...], mask: np.ndarray | None
) -> float:
    """One channel: scipy Gaussian moments (sigma 1.5, truncate 3.5), 5-voxel border cropped, 2x block means."""
    x, y = target.astype(np.float64), pred.astype(np.float64)
    inside = np.ones(x.shape, bool) if mask is None else mask.astype(bool)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    value = 1.0
    for scale, weight in enumerate(weights):
        mu_x, mu_y = gaussian_filter(x, 1.5, truncate=3.5), gaussian_filter(y, 1.5, truncate=3.5)
        vx = gaussian_filter(x * x, 1.5, truncate=3.5) - mu_x**2
        vy = gaussian_filter(y * y, 1.5, truncate=3.5) - mu_y**2
        cov = gaussian_filter(x * y, 1.5, truncate=3.5) - mu_x * mu_y
        cs = (2 * cov + c2) / (vx + vy + c2)
        lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        term = lum * cs if scale == len(weights) - 1 else cs
        core = tuple(slice(5, n - 5) for n in x.shape)
        value *= max(term[core][inside[core]].mean(), 0.0) ** weight
        even = tuple(slice(0, n - n % 2) for n in x.shape)
        blocks = [v for n in x.shape for v in (n // 2, 2)]
        axes = tuple(range(1, 2 * x.ndim, 2))
        x, y = (a[even].reshape(blocks).mean(axis=axes) for a in (x, y))
        inside = inside[even].reshape(blocks).all(axis=axes)
    return value


@pytest.mark.parametrize(
    ("shape", "weights"),
    [((181, 176), WEIGHTS), ((47, 45, 44), WEIGHTS[:3])],  # odd sizes: trailing voxels dropped
)
def test_matches_reference(shape: tuple[int, ...], weights: tuple[float, ...]) -> None:
    target, pred = smooth_pair(shape, batch=2, channels=1, offset=300.0, scale=40.0, seed=7)
    target, pred = target.astype(np.float64), pred.astype(np.float64)
    mask = np.zeros((2, 1, *shape), bool)
    mask[:, :, : 2 * shape[0] // 3, 6:] = True
    pred = pred + np.where(mask, 0.0, 100.0 * np.random.default_rng(8).standard_normal(pred.shape))  # worse outside
    ours = ms_ssim(
        torch.from_numpy(pred), torch.from_numpy(target), data_range=100.0, weights=weights, spatial_dims=len(shape)
    )
    masked = ms_ssim(
        torch.from_numpy(pred),
        torch.from_numpy(target),
        data_range=100.0,
        weights=weights,
        mask=torch.from_numpy(mask),
        spatial_dims=len(shape),
    )
    for b in range(2):
        expected = reference_ms_ssim(pred[b, 0], target[b, 0], 100.0, weights, None)
        expected_masked = reference_ms_ssim(pred[b, 0], target[b, 0], 100.0, weights, mask[b, 0])
        assert 0.2 < expected < 0.99
        assert expected_masked - expected > 0.01  # the mask changes the value
        torch.testing.assert_close(float(ours[b]), expected, rtol=0, atol=1e-10)
        torch.testing.assert_close(float(masked[b]), expected_masked, rtol=0, atol=1e-10)


def test_identical_images_score_one_and_float32_agrees() -> None:
    target, pred = smooth_pair((48, 48), batch=1, channels=2, offset=0.0, scale=1.0, seed=3)
    t = torch.from_numpy(target)
    torch.testing.assert_close(ms_ssim(t, t, data_range=10.0, weights=WEIGHTS[:3], spatial_dims=2), torch.ones(1))
    wide = ms_ssim(torch.from_numpy(pred).double(), t.double(), data_range=10.0, weights=WEIGHTS[:3], spatial_dims=2)
    narrow = ms_ssim(torch.from_numpy(pred), t, data_range=10.0, weights=WEIGHTS[:3], spatial_dims=2)
    torch.testing.assert_close(narrow, wide.float(), rtol=0, atol=1e-5)


def test_too_small_for_the_scales() -> None:
    t = torch.zeros(1, 1, 100, 200)
    with pytest.raises(InputDataError, match="at least 176 for 5 scales"):
        ms_ssim(t, t, data_range=1.0, spatial_dims=2)
    with pytest.raises(InputDataError, match="weights"):
        ms_ssim(t, t, data_range=1.0, weights=(), spatial_dims=2)
