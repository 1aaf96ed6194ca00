"""PSNR and MAE against scikit-image and numpy, masked variants, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio
from torch.testing import assert_close

from medxlate.errors import InputDataError
from medxlate.metrics import mae, psnr
from tests.metrics.references import SHAPE_2D, SHAPE_3D, smooth_pair


@pytest.mark.parametrize("shape", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
def test_psnr_matches_skimage(shape: tuple[int, ...]) -> None:
    target, pred = smooth_pair(shape, batch=3, channels=2, offset=-300.0, scale=50.0, seed=1)
    expected = [
        peak_signal_noise_ratio(t.astype(np.float64), p.astype(np.float64), data_range=2000.0)
        for p, t in zip(pred, target, strict=True)
    ]
    actual = psnr(torch.from_numpy(pred), torch.from_numpy(target), data_range=2000.0, spatial_dims=len(shape))
    assert actual.shape == (3,)
    assert_close(actual, torch.tensor(expected, dtype=torch.float32))


@pytest.mark.parametrize("shape", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
def test_masked_psnr_and_mae_match_numpy(shape: tuple[int, ...]) -> None:
    target, pred = smooth_pair(shape, batch=2, channels=2, offset=1000.0, scale=30.0, seed=2)
    mask = np.random.default_rng(3).random((2, 2, *shape)) < 0.3  # per-channel mask
    ranges = np.array([800.0, 1500.0])
    diff = pred.astype(np.float64) - target.astype(np.float64)
    mse = [np.mean([np.mean(diff[b, c][mask[b, c]] ** 2) for c in range(2)]) for b in range(2)]
    abs_err = [np.mean([np.mean(np.abs(diff[b, c][mask[b, c]])) for c in range(2)]) for b in range(2)]
    pred_t, target_t, mask_t = torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask)
    assert_close(
        psnr(pred_t, target_t, data_range=torch.from_numpy(ranges), mask=mask_t, spatial_dims=len(shape)),
        torch.tensor(10 * np.log10(ranges**2 / np.array(mse)), dtype=torch.float32),
    )
    assert_close(
        mae(pred_t, target_t, mask=mask_t, spatial_dims=len(shape)), torch.tensor(abs_err, dtype=torch.float32)
    )


def test_unmasked_mae_matches_numpy() -> None:
    target, pred = smooth_pair(SHAPE_3D, batch=2, channels=1, offset=0.0, scale=1.0, seed=4)
    expected = np.abs(pred.astype(np.float64) - target).reshape(2, -1).mean(axis=1)
    assert_close(mae(torch.from_numpy(pred), torch.from_numpy(target)), torch.tensor(expected, dtype=torch.float32))


def test_identical_images_give_inf_psnr_and_zero_mae() -> None:
    target, _ = smooth_pair(SHAPE_2D, batch=2, channels=1, offset=0.0, scale=1.0, seed=5)
    image = torch.from_numpy(target)
    assert_close(psnr(image, image.clone(), data_range=1.0, spatial_dims=2), torch.full((2,), float("inf")))
    assert_close(mae(image, image.clone(), spatial_dims=2), torch.zeros(2))


def test_empty_mask_gives_nan() -> None:
    target, pred = smooth_pair(SHAPE_2D, batch=2, channels=1, offset=0.0, scale=1.0, seed=6)
    mask = torch.zeros((2, 1, *SHAPE_2D), dtype=torch.bool)
    mask[0, 0, 3, 4] = True
    pred_t, target_t = torch.from_numpy(pred), torch.from_numpy(target)
    nan = torch.tensor(float("nan"))
    assert_close(psnr(pred_t, target_t, data_range=1.0, mask=mask, spatial_dims=2)[1], nan, equal_nan=True)
    assert_close(mae(pred_t, target_t, mask=mask, spatial_dims=2)[1], nan, equal_nan=True)
    assert_close(mae(pred_t, target_t, mask=mask, spatial_dims=2)[0], (pred_t - target_t).abs()[0, 0, 3, 4])


@pytest.mark.parametrize("metric", ["psnr", "mae"])
def test_shape_mismatch_names_both_shapes(metric: str) -> None:
    pred, target = torch.zeros(2, 1, 8, 8, 8), torch.zeros(2, 1, 8, 8, 9)
    call = {"psnr": lambda: psnr(pred, target, data_range=1.0), "mae": lambda: mae(pred, target)}[metric]
    with pytest.raises(InputDataError, match=rf"{metric}: .*pred \(2, 1, 8, 8, 8\) and target \(2, 1, 8, 8, 9\)"):
        call()


@pytest.mark.parametrize("data_range", [-1.0, float("nan"), float("inf"), "1", True])
def test_invalid_data_range_raises(data_range: object) -> None:
    with pytest.raises(InputDataError, match="data_range"):
        psnr(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), data_range=data_range, spatial_dims=2)  # type: ignore[arg-type]


def test_non_tensor_input_raises() -> None:
    with pytest.raises(InputDataError, match=r"pred must be a torch\.Tensor, got ndarray"):
        mae(np.zeros((1, 1, 4, 4)), torch.zeros(1, 1, 4, 4))  # type: ignore[arg-type]


def test_integer_and_half_inputs_are_computed_in_float32() -> None:
    generator = torch.Generator().manual_seed(0)
    pred = torch.randint(-1000, 1000, (2, 1, 16, 16), generator=generator, dtype=torch.int16)
    target = torch.randint(-1000, 1000, (2, 1, 16, 16), generator=generator, dtype=torch.int16)
    expected = mae(pred.float(), target.float(), spatial_dims=2)
    assert_close(mae(pred, target, spatial_dims=2), expected)
    assert_close(mae(pred.half(), target.half(), spatial_dims=2), expected)
