"""Dice and HD95 of structures: known answers, an independent NumPy/SciPy computation, empty structures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from medxlate.errors import GeometryError
from medxlate.metrics.anatomy import AIR_HU, BONE_HU, hu_structures, label_overlaps, overlaps, structure_overlaps

SPACING = (1.5, 1.25, 3.0)


def _cube(shape: tuple[int, int, int], start: tuple[int, int, int], size: int) -> torch.Tensor:
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[tuple(slice(s, s + size) for s in start)] = True
    return mask


def reference_hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Symmetric HD95 in mm from surface voxels (mask minus its erosion) and SciPy's exact EDT."""
    surfaces = [m & ~ndimage.binary_erosion(m) for m in (pred, ref)]
    to_ref = ndimage.distance_transform_edt(~surfaces[1], sampling=spacing)[surfaces[0]]
    to_pred = ndimage.distance_transform_edt(~surfaces[0], sampling=spacing)[surfaces[1]]
    return float(max(np.percentile(to_ref, 95), np.percentile(to_pred, 95)))


def _blob(seed: int, shape: tuple[int, int, int] = (24, 28, 16)) -> np.ndarray:
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 2.5)
    blob = noise > 0.02
    blob[:2], blob[-2:], blob[:, :2], blob[:, -2:], blob[:, :, :2], blob[:, :, -2:] = (False,) * 6
    return blob


@pytest.mark.parametrize("axis, voxels, mm", [(0, 3, 4.5), (1, 2, 2.5), (2, 1, 3.0)])
def test_cubes_offset_by_a_known_distance(axis: int, voxels: int, mm: float) -> None:
    shape, start = (24, 24, 16), [4, 4, 4]
    real = _cube(shape, tuple(start), 6)
    start[axis] += voxels
    found = overlaps({"cube": _cube(shape, tuple(start), 6)}, {"cube": real}, SPACING)
    # two 6-voxel cubes sharing 6 - voxels layers: Dice = 2 * overlap / (216 + 216); faces are `mm` apart
    assert found.values["dice_cube"] == pytest.approx((6 - voxels) / 6, rel=1e-6)
    assert found.values["hd95_cube"] == pytest.approx(mm, rel=1e-6)
    assert found.reasons == {}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_and_hd95_match_numpy_and_scipy(seed: int) -> None:
    pred, ref = _blob(seed), _blob(seed + 10)
    found = overlaps({"s": torch.from_numpy(pred)}, {"s": torch.from_numpy(ref)}, SPACING).values
    dice = 2 * np.logical_and(pred, ref).sum() / (pred.sum() + ref.sum())
    assert found["dice_s"] == pytest.approx(dice, rel=1e-6)
    assert found["hd95_s"] == pytest.approx(reference_hd95(pred, ref, SPACING), rel=1e-5)
    assert found["hd95_s"] > 0


def test_empty_structures_are_nan_with_a_reason() -> None:
    empty, cube = torch.zeros((12, 12, 12), dtype=torch.bool), _cube((12, 12, 12), (3, 3, 3), 4)
    found = overlaps({"a": empty, "b": empty, "c": cube}, {"a": empty, "b": cube, "c": empty}, SPACING)
    assert math.isnan(found.values["dice_a"]) and math.isnan(found.values["hd95_a"])
    assert found.values["dice_b"] == 0.0 and found.values["dice_c"] == 0.0  # missed / invented entirely
    assert math.isnan(found.values["hd95_b"]) and math.isnan(found.values["hd95_c"])
    assert found.reasons == {
        "dice_a": "a is empty in both images",
        "hd95_a": "a is empty in both images",
        "hd95_b": "b is empty in the synthetic image",
        "hd95_c": "c is empty in the real image",
    }


def test_hu_structures_thresholds_inside_the_body() -> None:
    ct = torch.tensor([BONE_HU, BONE_HU - 1, AIR_HU, AIR_HU + 1, 1000.0, -1000.0]).reshape(6, 1, 1)
    body = torch.tensor([True, True, True, True, False, False]).reshape(6, 1, 1)
    found = hu_structures(ct, body)
    assert found["bone"].flatten().tolist() == [True, False, False, False, False, False]
    assert found["air"].flatten().tolist() == [False, False, True, False, False, False]


def test_structure_overlaps_of_a_synthetic_ct() -> None:
    real = torch.full((20, 20, 10), 40.0)
    real[4:10, 4:10, 2:8] = 700.0  # bone
    real[12:18, 4:10, 2:8] = -800.0  # lung
    synthetic = real.clone()
    synthetic[4:10, 4:10, 2:8] = 240.0  # bone rendered too dark: below the threshold
    body = torch.ones_like(real, dtype=torch.bool)
    found = structure_overlaps(synthetic, real, body, SPACING)
    assert found.values["dice_bone"] == 0.0 and math.isnan(found.values["hd95_bone"])
    assert found.values["dice_air"] == pytest.approx(1.0) and found.values["hd95_air"] == 0.0
    assert list(found.values) == ["dice_bone", "hd95_bone", "dice_air", "hd95_air"]


def test_label_overlaps_per_label_id() -> None:
    ref = torch.zeros((16, 16, 8), dtype=torch.int64)
    ref[2:8, 2:8, 2:6], ref[9:14, 2:8, 2:6] = 1, 3
    seg = ref.clone()
    seg[2:8, 2:5, 2:6] = 0  # half of label 1 missed
    seg[0:2, 14:16, 0:2] = 7  # a label the reference does not have
    found = label_overlaps(seg.float(), ref, SPACING)
    assert list(found.values) == [f"{k}_label_{i}" for i in (1, 3, 7) for k in ("dice", "hd95")]
    assert found.values["dice_label_1"] == pytest.approx(2 * 72 / (72 + 144))
    assert found.values["dice_label_3"] == pytest.approx(1.0)
    assert found.values["dice_label_7"] == 0.0 and found.reasons == {
        "hd95_label_7": "label_7 is empty in the real image"
    }
    assert found.values["hd95_label_1"] == pytest.approx(reference_hd95(seg.numpy() == 1, ref.numpy() == 1, SPACING))


def test_structures_on_different_grids_are_refused() -> None:
    with pytest.raises(GeometryError, match="structure 'x'"):
        overlaps(
            {"x": torch.ones((4, 4, 4), dtype=torch.bool)}, {"x": torch.ones((4, 4, 5), dtype=torch.bool)}, SPACING
        )
