from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medxlate.errors import InputDataError
from medxlate.training.setup import linear_decay
from medxlate.transforms import (
    Preprocessing,
    axcodes,
    pad_in_plane,
    percentile_range,
    range_to_unit,
    restore_grid,
    stack_context,
    to_canonical,
    unit_to_range,
    window_to_unit,
)
from tests.conftest import tiny_affine


def test_window_to_unit_clips_and_inverts() -> None:
    hu = torch.tensor([-2048.0, -1024.0, 1023.5, 3071.0, 4000.0])
    unit = window_to_unit(hu, (-1024.0, 3071.0))
    torch.testing.assert_close(unit, torch.tensor([-1.0, -1.0, 0.0, 1.0, 1.0]))
    torch.testing.assert_close(unit_to_range(unit[1:4], (-1024.0, 3071.0)), hu[1:4])


def test_range_to_unit_round_trip_and_constant_error() -> None:
    x = torch.tensor([0.0, 50.0, 100.0, 150.0])
    torch.testing.assert_close(range_to_unit(x, (0.0, 100.0)), torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    torch.testing.assert_close(unit_to_range(range_to_unit(x, (10.0, 90.0)), (10.0, 90.0)), x)
    with pytest.raises(InputDataError, match="increasing"):
        range_to_unit(x, (5.0, 5.0))


def test_percentile_range_matches_numpy_and_mask() -> None:
    values = torch.arange(1000, dtype=torch.float32).reshape(10, 10, 10)
    low, high = percentile_range(values, (0.5, 99.5))
    assert low == pytest.approx(np.percentile(values.numpy(), 0.5), rel=1e-5)
    assert high == pytest.approx(np.percentile(values.numpy(), 99.5), rel=1e-5)
    mask = values >= 500
    low_masked, _ = percentile_range(values, (0.0, 100.0), mask=mask)
    assert low_masked == 500.0
    with pytest.raises(InputDataError, match="no voxel"):
        percentile_range(values, (1, 99), mask=torch.zeros_like(mask))
    with pytest.raises(InputDataError, match="constant"):
        percentile_range(torch.ones(10), (1, 99))


def test_canonical_and_restore_are_exact_without_resampling() -> None:
    image = MetaTensor(torch.rand(1, 6, 7, 5), affine=torch.tensor(tiny_affine()))
    canonical = to_canonical(image)
    assert axcodes(image.affine) == "LAS" and axcodes(canonical.affine) == "RAS"
    # world coordinate of voxel (0,0,0) in canonical == world of voxel (5,0,0) in the LAS original
    original_world = torch.tensor(tiny_affine()) @ torch.tensor([5.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(canonical.affine[:, 3], original_world)
    torch.testing.assert_close(canonical[0, 0], image[0, 5])
    restored = restore_grid(canonical, image, resampled=False)
    torch.testing.assert_close(restored.as_tensor(), image.as_tensor())
    torch.testing.assert_close(restored.affine, image.affine.to(torch.float64))


def test_restore_after_resampling_preserves_smooth_content() -> None:
    x = torch.linspace(0, 1, 12)[:, None, None] + torch.linspace(0, 1, 10)[None, :, None] + torch.zeros(1, 1, 4)
    image = MetaTensor(x[None].float(), affine=torch.tensor(tiny_affine()))
    canonical = to_canonical(image, pixdim=(1.0, 1.0, 3.0))
    assert canonical.shape[1:] != image.shape[1:]
    restored = restore_grid(canonical, image, resampled=True)
    assert restored.shape == image.shape
    torch.testing.assert_close(restored.affine, image.affine.to(torch.float64))
    interior = (slice(None), slice(2, -2), slice(2, -2), slice(None))
    # a linear ramp survives bilinear resampling and back exactly (measured 1.2e-7; float32 rounding); a
    # 0.2-voxel shift would err by ~0.02 (the ramp rises 1/11 per voxel along x)
    torch.testing.assert_close(restored[interior].as_tensor(), image[interior].as_tensor(), atol=1e-6, rtol=0)


def test_stack_context_and_padding() -> None:
    volume = torch.arange(4, dtype=torch.float32).reshape(1, 1, 1, 4).expand(1, 2, 3, 4)
    stacked = stack_context(volume, 1)
    assert stacked.shape == (3, 2, 3, 4)
    torch.testing.assert_close(stacked[:, 0, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(stacked[:, 0, 0, 3], torch.tensor([2.0, 3.0, 3.0]))
    padded, (crop_x, crop_y) = pad_in_plane(volume, 8, -1.0)
    assert padded.shape == (1, 8, 8, 4)
    torch.testing.assert_close(padded[:, crop_x, crop_y], volume)
    assert float(padded[0, 0, 0, 0]) == -1.0


def test_preprocessing_round_trip_dict() -> None:
    prep = Preprocessing((-1024.0, 3071.0), (0.5, 99.5), target_range=(1.0, 2.0), pixdim=None, divisible=8)
    assert Preprocessing.from_dict(prep.to_dict()) == prep


def test_linear_decay_matches_pix2pix() -> None:
    factor = linear_decay(epochs=4, decay_epochs=2)
    assert [round(factor(e), 6) for e in range(4)] == [1.0, 1.0, round(2 / 3, 6), round(1 / 3, 6)]
    assert linear_decay(3, 0)(2) == 1.0
