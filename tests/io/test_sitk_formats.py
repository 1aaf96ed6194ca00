"""NRRD and MetaImage: written with SimpleITK, loaded with load_volume, geometry checked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch.testing import assert_close

from medxlate.io import load_volume
from tests.io.geometry_helpers import CORNERS, affine_world, rotation, sitk_world_ras

SPACING = (0.7, 0.9, 2.5)
ORIGIN_LPS = (12.0, -7.5, 33.0)


def _write(path: Path, array_zyx: np.ndarray, *, vector: bool = False) -> tuple[sitk.Image, np.ndarray]:
    """Write an oblique image; return it and its direction matrix (columns = index axes, LPS)."""
    direction = rotation(20.0, -15.0, 30.0)
    image = sitk.GetImageFromArray(array_zyx, isVector=vector)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN_LPS)
    image.SetDirection(direction.flatten().tolist())
    sitk.WriteImage(image, str(path))
    return image, direction


@pytest.mark.parametrize("name", ["img.nrrd", "img.nhdr", "img.mha", "img.mhd"])
def test_scalar_image_values_and_world(tmp_path: Path, name: str) -> None:
    array_zyx = np.random.default_rng(1).integers(-1024, 3000, (4, 6, 5)).astype(np.int16)  # (Z, Y, X)
    image, direction = _write(tmp_path / name, array_zyx)
    loaded = load_volume(tmp_path / name)

    assert loaded.shape == (1, 5, 6, 4)
    assert loaded.dtype == torch.float32
    assert_close(loaded[0].as_tensor(), torch.from_numpy(array_zyx.transpose(2, 1, 0).astype(np.float32)))
    expected = np.eye(4)  # RAS = diag(-1, -1, 1) @ LPS, built without any image library
    expected[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ direction @ np.diag(SPACING)
    expected[:3, 3] = np.array(ORIGIN_LPS) * np.array([-1.0, -1.0, 1.0])
    assert_close(loaded.affine, torch.as_tensor(expected), atol=1e-6, rtol=0)
    in_bounds = [idx for idx in CORNERS if all(i < n for i, n in zip(idx, (5, 6, 4), strict=True))]
    assert_close(affine_world(loaded.affine, in_bounds), sitk_world_ras(image, in_bounds), atol=1e-6, rtol=0)
    assert_close(torch.as_tensor(loaded.meta["spacing"]), torch.as_tensor(SPACING, dtype=torch.float64))
    assert loaded.meta["filename_or_obj"] == str(tmp_path / name)


def test_vector_image_becomes_channels(tmp_path: Path) -> None:
    array = np.random.default_rng(2).normal(size=(4, 6, 5, 3)).astype(np.float32)  # (Z, Y, X, C)
    _write(tmp_path / "vec.nrrd", array, vector=True)
    loaded = load_volume(tmp_path / "vec.nrrd")
    assert loaded.shape == (3, 5, 6, 4)
    assert_close(loaded.as_tensor(), torch.from_numpy(array.transpose(3, 2, 1, 0).copy()))


def test_2d_image_gets_one_slice(tmp_path: Path) -> None:
    array_yx = np.arange(12, dtype=np.float32).reshape(3, 4)
    image = sitk.GetImageFromArray(array_yx)
    image.SetSpacing((0.5, 0.25))
    image.SetOrigin((3.0, 4.0))
    sitk.WriteImage(image, str(tmp_path / "xray.mha"))
    loaded = load_volume(tmp_path / "xray.mha")
    assert loaded.shape == (1, 4, 3, 1)
    assert_close(loaded[0, ..., 0].as_tensor(), torch.from_numpy(array_yx.T.copy()))
    expected = torch.tensor(
        [[-0.5, 0.0, 0.0, -3.0], [0.0, -0.25, 0.0, -4.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    assert_close(loaded.affine, expected)
