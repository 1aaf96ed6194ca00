"""SSIM against scikit-image (float64 reference), masked SSIM against a numpy reference, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from medxlate.errors import InputDataError
from medxlate.metrics import filtering, ssim
from tests.metrics.references import (
    SHAPE_2D,
    SHAPE_3D,
    cropped_masked_mean,
    skimage_ssim,
    skimage_ssim_map,
    smooth_pair,
)

SKIMAGE_TOL = {"atol": 1e-4, "rtol": 0.0}
# (offset, scale, data_range): unit range, MR-like signal in the thousands, CT in HU, a large
# offset with a small range (the float32 cancellation trap)
INTENSITIES = [(0.0, 0.1, 1.0), (3000.0, 60.0, 1200.0), (-400.0, 200.0, 4095.0), (10000.0, 40.0, 200.0)]


@pytest.mark.parametrize("shape", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
@pytest.mark.parametrize(("offset", "scale", "data_range"), INTENSITIES)
def test_ssim_matches_skimage(shape: tuple[int, ...], offset: float, scale: float, data_range: float) -> None:
    target, pred = smooth_pair(shape, batch=3, channels=1, offset=offset, scale=scale, seed=1)
    expected = [skimage_ssim(p[0], t[0], data_range) for p, t in zip(pred, target, strict=True)]
    actual = ssim(torch.from_numpy(pred), torch.from_numpy(target), data_range=data_range, spatial_dims=len(shape))
    assert actual.shape == (3,)
    assert actual.dtype == torch.float32
    assert_close(actual, torch.tensor(expected, dtype=torch.float32), **SKIMAGE_TOL)


def test_ssim_averages_channels_like_skimage_channel_axis() -> None:
    target, pred = smooth_pair(SHAPE_3D, batch=2, channels=3, offset=100.0, scale=20.0, seed=2)
    expected = [np.mean([skimage_ssim(p[c], t[c], 400.0) for c in range(3)]) for p, t in zip(pred, target, strict=True)]
    actual = ssim(torch.from_numpy(pred), torch.from_numpy(target), data_range=400.0)
    assert_close(actual, torch.tensor(expected, dtype=torch.float32), **SKIMAGE_TOL)


def test_ssim_per_sample_data_range_and_other_window() -> None:
    target, pred = smooth_pair(SHAPE_2D, batch=2, channels=1, offset=50.0, scale=10.0, seed=3)
    ranges = [100.0, 250.0]
    expected = [skimage_ssim(p[0], t[0], r, sigma=1.0) for p, t, r in zip(pred, target, ranges, strict=True)]
    actual = ssim(
        torch.from_numpy(pred), torch.from_numpy(target), data_range=torch.tensor(ranges), sigma=1.0, spatial_dims=2
    )
    assert_close(actual, torch.tensor(expected, dtype=torch.float32), **SKIMAGE_TOL)


@pytest.mark.parametrize("shape", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["shared-mask", "channel-mask"])
def test_masked_ssim_matches_numpy_reference(shape: tuple[int, ...], per_channel: bool) -> None:
    target, pred = smooth_pair(shape, batch=2, channels=2, offset=-500.0, scale=100.0, seed=4)
    rng = np.random.default_rng(5)
    mask = rng.random((2, 2 if per_channel else 1, *shape)) < 0.4
    expected = [
        np.mean([cropped_masked_mean(skimage_ssim_map(p[c], t[c], 3000.0), m[c % len(m)], 5) for c in range(2)])
        for p, t, m in zip(pred, target, mask, strict=True)
    ]
    actual = ssim(
        torch.from_numpy(pred),
        torch.from_numpy(target),
        data_range=3000.0,
        mask=torch.from_numpy(mask),
        spatial_dims=len(shape),
    )
    assert_close(actual, torch.tensor(expected, dtype=torch.float32), **SKIMAGE_TOL)


def test_mask_as_zero_one_floats_equals_boolean_mask() -> None:
    target, pred = smooth_pair(SHAPE_2D, batch=2, channels=1, offset=0.0, scale=1.0, seed=6)
    mask = torch.from_numpy(np.random.default_rng(7).random((1, 1, *SHAPE_2D)) < 0.5)  # broadcast over B
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)
    assert_close(
        ssim(pred_t, target_t, data_range=10.0, mask=mask.float(), spatial_dims=2),
        ssim(pred_t, target_t, data_range=10.0, mask=mask, spatial_dims=2),
    )


@pytest.mark.parametrize("shape", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
def test_identical_images_give_one(shape: tuple[int, ...]) -> None:
    target, _ = smooth_pair(shape, batch=2, channels=2, offset=1000.0, scale=30.0, seed=8)
    image = torch.from_numpy(target)
    assert_close(ssim(image, image.clone(), data_range=500.0, spatial_dims=len(shape)), torch.ones(2))


def test_empty_mask_gives_nan_for_that_sample_only() -> None:
    target, pred = smooth_pair(SHAPE_2D, batch=2, channels=1, offset=0.0, scale=1.0, seed=9)
    mask = torch.zeros((2, 1, *SHAPE_2D), dtype=torch.bool)
    mask[0, :, 10:20, 10:20] = True
    mask[1, :, :5, :] = True  # only inside the 5-voxel border strip: empty once cropped
    actual = ssim(torch.from_numpy(pred), torch.from_numpy(target), data_range=10.0, mask=mask, spatial_dims=2)
    assert torch.isfinite(actual[0])
    assert_close(actual[1], torch.tensor(float("nan")), equal_nan=True)


def test_float64_input_is_computed_in_float64() -> None:
    target, pred = smooth_pair(SHAPE_2D, batch=1, channels=1, offset=0.0, scale=1.0, seed=10)
    actual = ssim(torch.from_numpy(pred).double(), torch.from_numpy(target).double(), data_range=8.0, spatial_dims=2)
    assert actual.dtype == torch.float64
    assert_close(actual, torch.tensor([skimage_ssim(pred[0, 0], target[0, 0], 8.0)], dtype=torch.float64))


def test_ssim_is_differentiable() -> None:
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand((1, 1, 12, 13), generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.rand((1, 1, 12, 13), generator=generator, dtype=torch.float64) + 3.0
    assert torch.autograd.gradcheck(lambda p: ssim(p, target, data_range=4.0, spatial_dims=2), (pred,))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(InputDataError, match=r"pred \(1, 1, 16, 16\) and target \(1, 1, 16, 17\)"):
        ssim(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 17), data_range=1.0)


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [
        ((1, 1, 1, 16, 16), {}, r"spatial_dims=2 expects \(B, C, \*spatial\) \(4 dims\) or one image"),
        ((1, 1, 16, 10), {}, r"window size 11"),
        ((1, 1, 16, 16), {"data_range": 0.0}, r"data_range must be positive"),
        ((1, 1, 16, 16), {"data_range": torch.ones(3)}, r"data_range tensor must have shape"),
        ((1, 1, 16, 16), {"mask": torch.ones(1, 1, 16, 15)}, r"mask of shape \(1, 1, 16, 15\)"),
        ((1, 1, 16, 16), {"mask": torch.ones(16, 16)}, r"mask of shape \(16, 16\)"),
        ((1, 1, 16, 16), {"sigma": 0.0}, r"sigma and truncate must be positive"),
    ],
)
def test_invalid_arguments_raise(shape: tuple[int, ...], kwargs: dict, message: str) -> None:
    args = {"data_range": 1.0, "spatial_dims": 2, **kwargs}
    with pytest.raises(InputDataError, match=message):
        ssim(torch.zeros(shape), torch.zeros(shape), **args)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_without_host_sync() -> None:
    target, pred = smooth_pair(SHAPE_3D, batch=2, channels=1, offset=10000.0, scale=40.0, seed=11)
    mask = torch.from_numpy(np.random.default_rng(12).random((2, 1, *SHAPE_3D)) < 0.5)
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)
    expected = ssim(pred_t, target_t, data_range=200.0, mask=mask)
    on_gpu = (pred_t.cuda(), target_t.cuda(), torch.full((2,), 200.0, device="cuda"), mask.cuda())
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device synchronisation raises
    try:
        actual = ssim(on_gpu[0], on_gpu[1], data_range=on_gpu[2], mask=on_gpu[3])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert_close(actual.cpu(), expected, atol=1e-5, rtol=0.0)


def test_gpu_filter_path_matches_skimage_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shifted-sum filter used off-CPU gives the same SSIM (checked here without a GPU)."""
    monkeypatch.setattr(filtering, "_banded_matmul", filtering._shifted_sum)
    target, pred = smooth_pair(SHAPE_3D, batch=2, channels=1, offset=10000.0, scale=40.0, seed=13)
    expected = [skimage_ssim(p[0], t[0], 200.0) for p, t in zip(pred, target, strict=True)]
    actual = ssim(torch.from_numpy(pred), torch.from_numpy(target), data_range=200.0)
    assert_close(actual, torch.tensor(expected, dtype=torch.float32), **SKIMAGE_TOL)
