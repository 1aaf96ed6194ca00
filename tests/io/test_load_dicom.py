"""DICOM loading: voxels and world coordinates must match SimpleITK's ImageSeriesReader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from torch.testing import assert_close

from medxlate.errors import GeometryError, InputDataError
from medxlate.io import load_volume
from tests.dicom_factory import slice_values_hu, write_ct_series
from tests.io.geometry_helpers import CORNERS, affine_world, rotation, sitk_affine_ras, sitk_world_ras, sitk_xyz

SHAPE = (5, 6, 7)  # (X, Y, Z): columns, rows, slices
SPACING = (0.7, 0.9, 2.5)
ORIGIN = (12.5, -30.25, 47.0)
SLOPE, INTERCEPT = 0.5, -1000.0


@pytest.fixture
def volume_hu() -> np.ndarray:
    return np.random.default_rng(7).uniform(-1000.0, 2000.0, SHAPE)


def _oblique() -> tuple[np.ndarray, np.ndarray]:
    axes = rotation(20.0, 20.0)  # rotated 20 deg about x and about y
    return axes[:, 0], axes[:, 1]


def _sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


@pytest.mark.parametrize("instance_order", ["ascending", "descending", "shuffled", "missing"])
def test_oblique_series_matches_simpleitk(tmp_path: Path, volume_hu: np.ndarray, instance_order: str) -> None:
    row, col = _oblique()
    write_ct_series(
        tmp_path, volume_hu, SPACING, ORIGIN, row, col, slope=SLOPE, intercept=INTERCEPT, instance_order=instance_order
    )
    img = load_volume(tmp_path)
    reference = _sitk_series(tmp_path)

    assert isinstance(img, MetaTensor)
    assert img.shape == (1, *SHAPE)
    assert img.dtype == torch.float32
    assert img.affine.dtype == torch.float64
    assert_close(img[0].as_tensor().double(), sitk_xyz(reference))
    assert_close(img[0].as_tensor().double(), torch.as_tensor(slice_values_hu(volume_hu, SLOPE, INTERCEPT)))
    assert_close(img.affine, sitk_affine_ras(reference), atol=1e-5, rtol=0)
    assert_close(affine_world(img.affine, CORNERS), sitk_world_ras(reference, CORNERS), atol=1e-4, rtol=0)
    assert_close(torch.as_tensor(img.meta["spacing"]), torch.as_tensor(SPACING, dtype=torch.float64), atol=1e-5, rtol=0)


def test_series_geometry_is_lps_flipped_to_ras(tmp_path: Path, volume_hu: np.ndarray) -> None:
    """Axis-aligned series: the affine is known in closed form (x, y negated from DICOM LPS)."""
    write_ct_series(tmp_path, volume_hu, SPACING, ORIGIN)
    img = load_volume(tmp_path)
    expected = torch.tensor(
        [
            [-SPACING[0], 0.0, 0.0, -ORIGIN[0]],
            [0.0, -SPACING[1], 0.0, -ORIGIN[1]],
            [0.0, 0.0, SPACING[2], ORIGIN[2]],
            [0.0, 0.0, 0.0, 1.0],
        ],
        dtype=torch.float64,
    )
    assert_close(img.affine, expected, atol=1e-6, rtol=0)


def test_rescale_is_applied_per_slice_and_unsigned_pixels(tmp_path: Path) -> None:
    volume = np.random.default_rng(3).uniform(-1000.0, 1500.0, (4, 3, 5))
    slopes, intercepts = [1.0, 0.5, 2.0, 1.0, 0.25], [-1024.0, -1000.0, -2048.0, -1100.0, -1000.0]
    write_ct_series(tmp_path, volume, (1.0, 1.0, 2.0), slope=slopes, intercept=intercepts, signed=False)
    img = load_volume(tmp_path)
    # Not compared with SimpleITK here: its series reader picks an integer pixel type from the first
    # slice (slope 1) and truncates the fractional HU of the other slices.
    assert_close(img[0].as_tensor().double(), torch.as_tensor(slice_values_hu(volume, slopes, intercepts)))


def test_meta_keeps_useful_fields_and_no_identifiers(tmp_path: Path, volume_hu: np.ndarray) -> None:
    write_ct_series(tmp_path, volume_hu, SPACING, ORIGIN, series_description="Thorax 2.5mm")
    img = load_volume(tmp_path, dtype=torch.float64)
    assert img.dtype == torch.float64
    assert img.meta["modality"] == "CT"
    assert img.meta["series_description"] == "Thorax 2.5mm"
    assert img.meta["filename_or_obj"] == str(tmp_path)
    assert isinstance(img.meta["spacing"], np.ndarray)
    flat = repr(img.meta)
    assert "FAKE-0001" not in flat and "Synthetic" not in flat and "1.2.826" not in flat


def test_single_dicom_file_is_one_slice_with_normal_axis(tmp_path: Path, volume_hu: np.ndarray) -> None:
    row, col = _oblique()
    paths = write_ct_series(tmp_path, volume_hu, SPACING, ORIGIN, row, col, slope=SLOPE, intercept=INTERCEPT)
    img = load_volume(paths[3])
    reference = sitk.ReadImage(str(paths[3]))  # a 3D image with one slice
    assert img.shape == (1, SHAPE[0], SHAPE[1], 1)
    assert_close(img[0, ..., 0].as_tensor().double(), sitk_xyz(reference)[..., 0])
    in_plane = [(0, 0, 0), (4, 0, 0), (0, 5, 0), (2, 3, 0)]
    assert_close(affine_world(img.affine, in_plane), sitk_world_ras(reference, in_plane), atol=1e-4, rtol=0)
    normal_ras = torch.as_tensor(np.cross(row, col) * np.array([-1.0, -1.0, 1.0]) * SPACING[2])
    assert_close(img.affine[:3, 2], normal_ras, atol=1e-5, rtol=0)  # slice thickness along the normal


def test_non_dicom_files_in_series_folder_are_ignored(tmp_path: Path, volume_hu: np.ndarray) -> None:
    write_ct_series(tmp_path, volume_hu, SPACING, ORIGIN)
    (tmp_path / "README.txt").write_text("exported by PACS")
    (tmp_path / ".DS_Store").write_bytes(b"\0\1\2")
    assert load_volume(tmp_path).shape == (1, *SHAPE)


def test_missing_slice_raises_geometry_error(tmp_path: Path, volume_hu: np.ndarray) -> None:
    paths = write_ct_series(tmp_path, volume_hu, SPACING, ORIGIN, shuffle=False)
    paths[3].unlink()
    with pytest.raises(GeometryError, match="equally spaced") as info:
        load_volume(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_duplicate_positions_raise_geometry_error(tmp_path: Path, volume_hu: np.ndarray) -> None:
    write_ct_series(tmp_path / "s", volume_hu, SPACING, ORIGIN, seed=1)
    # a second acquisition at the same positions, same series UID (same seed), other file names
    write_ct_series(tmp_path / "t", volume_hu, SPACING, ORIGIN, seed=1)
    for path in (tmp_path / "t").iterdir():
        path.rename(tmp_path / "s" / f"b_{path.name}")
    with pytest.raises(GeometryError, match="share a position"):
        load_volume(tmp_path / "s")


def test_no_dicom_in_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing to see")
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputDataError, match="no DICOM files") as info:
        load_volume(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "2 entries" in message and "1 subfolder" in message


def test_several_series_are_described_without_identifiers(tmp_path: Path, volume_hu: np.ndarray) -> None:
    write_ct_series(tmp_path, volume_hu, SPACING, ORIGIN, series_description="Thorax", seed=1, series_number=1)
    write_ct_series(tmp_path, volume_hu[..., :2], SPACING, ORIGIN, series_description="Scout", seed=2, series_number=2)
    with pytest.raises(InputDataError, match="2 series") as info:
        load_volume(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "'Thorax' (CT, 7 files)" in message and "'Scout' (CT, 2 files)" in message
    assert "FAKE-0001" not in message and "Test^Synthetic" not in message and "1.2.826" not in message
    assert info.value.__cause__ is None  # nothing failed underneath: the content itself is unexpected
