"""synthrad2025 against a float64 NumPy/SciPy/scikit-image transcription of the challenge's code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medxlate.errors import GeometryError, InputDataError
from medxlate.metrics import synthrad2025
from tests.metrics.synthrad_reference import score_patient


def ct_case(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target, pred, mask): a smooth 'body' in air with bone above 3071 HU, pred off by smooth errors.

    The mask is an off-centre ellipsoid with values 0, 1 and 2 (binarised as > 0); the prediction
    has values below -1024 and above 3071 so that the clipping of PSNR/MS-SSIM (not MAE) matters.
    """
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    radius = sum(((g - 0.1 * (i + 1)) / (0.8 - 0.1 * i)) ** 2 for i, g in enumerate(grids))
    body = radius < 1.0
    target = np.where(body, 40.0 + 300.0 * gaussian_filter(rng.standard_normal(shape), 1.5), -1000.0)
    target[radius < 0.1] = 3400.0  # metal / dense bone beyond the clipping range
    target += 5.0 * rng.standard_normal(shape)
    pred = target + 900.0 * gaussian_filter(rng.standard_normal(shape), 1.0) + 300.0 * rng.standard_normal(shape)
    pred[radius > 1.3] = -1300.0  # below the range outside the body
    mask = body.astype(np.uint8) * rng.integers(1, 3, size=shape).astype(np.uint8)
    return target, pred, mask


def assert_matches_reference(ours: dict[str, float], expected: dict[str, float]) -> None:
    assert set(ours) == {"mae", "psnr", "ms_ssim"}
    torch.testing.assert_close(ours["mae"], expected["mae"], rtol=0, atol=1e-6)
    torch.testing.assert_close(ours["psnr"], expected["psnr"], rtol=0, atol=1e-6)
    torch.testing.assert_close(ours["ms_ssim"], expected["ms_ssim"], rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("shape", "seed"),
    [
        ((20, 24, 18), 0),  # every axis edge-padded to 97 (even and odd split)
        ((101, 14, 9), 1),  # one axis above 97: no padding there, odd sizes at every level
    ],
)
def test_matches_challenge_definition(shape: tuple[int, int, int], seed: int) -> None:
    target, pred, mask = ct_case(shape, seed)
    expected = score_patient(target, pred, mask)
    assert 0.5 < expected["ms_ssim"] < 0.998  # a case where every term matters
    ours = synthrad2025(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask))
    assert_matches_reference(ours, expected)


def test_channel_axis_and_dtypes_are_accepted() -> None:
    target, pred, mask = ct_case((16, 18, 12), 2)
    target, pred = target.round().astype(np.int16), pred.astype(np.float32)
    expected = score_patient(target, pred, mask)
    ours = synthrad2025(torch.from_numpy(pred)[None], torch.from_numpy(target)[None], torch.from_numpy(mask > 0)[None])
    assert_matches_reference(ours, expected)


def test_without_mask_scores_the_whole_volume() -> None:
    target, pred, _ = ct_case((16, 14, 12), 3)
    ones = np.ones(target.shape, dtype=np.uint8)
    ours = synthrad2025(torch.from_numpy(pred), torch.from_numpy(target))
    assert_matches_reference(ours, score_patient(target, pred, ones))


def test_perfect_prediction() -> None:
    target, _, mask = ct_case((12, 12, 12), 4)
    values = synthrad2025(torch.from_numpy(target), torch.from_numpy(target), torch.from_numpy(mask))
    assert values["mae"] == 0.0
    assert values["psnr"] == math.inf
    torch.testing.assert_close(values["ms_ssim"], 1.0, rtol=0, atol=1e-12)


def test_bad_inputs_are_refused() -> None:
    target, pred, mask = ct_case((12, 12, 12), 5)
    t, p, m = torch.from_numpy(target), torch.from_numpy(pred), torch.from_numpy(mask)
    with pytest.raises(GeometryError, match="same grid"):
        synthrad2025(p[:-1], t, m)
    with pytest.raises(GeometryError, match="same grid"):
        synthrad2025(p, t, m[:, :-1])
    with pytest.raises(GeometryError, match=r"\(X, Y, Z\)"):
        synthrad2025(p[0], t[0], m[0])
    with pytest.raises(InputDataError, match="mask is empty"):
        synthrad2025(p, t, torch.zeros_like(m))
    with pytest.raises(InputDataError, match="negative"):
        synthrad2025(p, t, m.to(torch.int16) - 1)
    mr = torch.from_numpy(np.abs(pred) / 4.0)  # non-negative arbitrary units: no air
    with pytest.raises(InputDataError, match="does not look like a CT"):
        synthrad2025(p, mr, m)
    with pytest.raises(InputDataError, match="does not look like a CT"):
        synthrad2025(p, (t + 1024) / 2048 - 1, m)  # normalised to [-1, 1]
    nan_pred = p.clone()
    nan_pred[3, 3, 3] = float("nan")
    with pytest.raises(InputDataError, match="pred contains NaN"):
        synthrad2025(nan_pred, t, m)
