"""Gaps, uneven spacing, duplicates and gantry tilt: a clear error by default, exact resampling on request.

World coordinates are checked against SimpleITK reading each file on its own (its per-file geometry
is right; its series reader assumes a regular, untilted stack and returns a sheared volume).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch.testing import assert_close

from medxlate.errors import ConfigError, GeometryError
from medxlate.io import load_volume
from tests.dicom_factory import write_ct_series
from tests.io.geometry_helpers import rotation, sitk_affine_ras, sitk_xyz

SX, SY = 1.0, 1.0
SHAPE = (12, 16)  # (X, Y) of each slice


def _axes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axes = rotation(25.0, -10.0, 5.0)
    r, c = axes[:, 0], axes[:, 1]
    return r, c, np.cross(r, c)


def _linear_series(folder: Path, positions: np.ndarray, **kwargs: object) -> list[Path]:
    """Slices at ``positions`` whose values are a linear function of world (LPS) coordinates."""
    r, c, _ = _axes()
    i, j = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    world = positions[None, None] + (i[..., None] * SX * r + j[..., None] * SY * c)[:, :, None]  # (X, Y, Z, 3)
    values = world @ np.array([2.0, -1.5, 3.0]) + 20.0
    return write_ct_series(
        folder, values, (SX, SY, 1.0), positions[0], r, c, positions=positions, slope=0.01, intercept=0.0, **kwargs
    )


def _expected_linear(img: torch.Tensor, affine: torch.Tensor) -> np.ndarray:
    """The linear function at the RAS world position of every voxel of ``img``."""
    shape = img.shape[1:]
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    ras = (np.c_[index, np.ones(len(index))] @ affine.numpy().T)[:, :3]
    lps = ras * np.array([-1.0, -1.0, 1.0])
    return (lps @ np.array([2.0, -1.5, 3.0]) + 20.0).reshape(shape)


def _assert_matches_sitk_files(img: torch.Tensor, files: list[Path]) -> int:
    """Each file's pixels, placed by SimpleITK, equal ``img`` at the same world point (where on the grid)."""
    inverse = np.linalg.inv(img.affine.numpy())
    checked = 0
    for path in files:
        ref = sitk.ReadImage(str(path))
        pixels = sitk.GetArrayFromImage(ref)[0].astype(np.float64)  # (Y, X)
        for i, j in [(0, 0), (5, 3), (11, 15), (7, 9)]:
            lps = np.asarray(ref.TransformIndexToPhysicalPoint((i, j, 0)))
            index = inverse @ np.r_[lps * np.array([-1.0, -1.0, 1.0]), 1.0]
            if np.abs(index[:3] - np.rint(index[:3])).max() > 1e-4:
                continue  # not a grid point of the resampled volume
            x, y, z = (int(v) for v in np.rint(index[:3]))
            if 0 <= x < img.shape[1] and 0 <= y < img.shape[2] and 0 <= z < img.shape[3]:
                assert float(img[0, x, y, z]) == pytest.approx(pixels[j, i], abs=1e-3), (path.name, i, j)
                checked += 1
    return checked


def _regular(n: int, step: float = 2.5) -> np.ndarray:
    _, _, normal = _axes()
    return np.array([10.0, -20.0, 30.0]) + np.arange(n)[:, None] * step * normal


def test_gap_is_an_error_naming_series_slices_and_distances(tmp_path: Path) -> None:
    _linear_series(tmp_path, np.delete(_regular(12), 6, axis=0), series_description="Abdomen 2.5")
    with pytest.raises(GeometryError) as info:
        load_volume(tmp_path)
    message = str(info.value)
    assert f"DICOM series 'Abdomen 2.5' (CT, 11 files) in {tmp_path}" in message
    assert "gap between slices 6 and 7: 5 mm where 2.5 mm expected" in message
    assert "on_irregular='resample'" in message and "FAKE-0001" not in message


def test_gap_resampled_linearly_with_world_coordinates_kept(tmp_path: Path) -> None:
    files = _linear_series(tmp_path, np.delete(_regular(12), 6, axis=0))
    with pytest.warns(UserWarning, match=r"resampled onto 12 slices 2.5 mm apart"):
        img = load_volume(tmp_path, on_irregular="resample", dtype=torch.float64)
    assert img.shape == (1, *SHAPE, 12) and img.meta["resampled"] == "uniform spacing"
    assert_close(torch.as_tensor(img.meta["spacing"]), torch.tensor([SX, SY, 2.5], dtype=torch.float64))
    assert_close(img[0].as_tensor(), torch.as_tensor(_expected_linear(img, img.affine)), atol=0.011, rtol=0)
    assert _assert_matches_sitk_files(img, files) == 4 * 11


def test_uneven_spacing_resampled_exactly_for_a_linear_image(tmp_path: Path) -> None:
    positions = _regular(8)
    positions[3] += 0.6 * _axes()[2]  # one slice 0.6 mm off along the normal
    files = _linear_series(tmp_path, positions)
    with pytest.raises(GeometryError, match=r"spacing between slices 3 and 4: 3\.1 mm where 2\.5 mm expected"):
        load_volume(tmp_path)
    with pytest.warns(UserWarning, match="resampled"):
        img = load_volume(tmp_path, on_irregular="resample", dtype=torch.float64)
    assert img.shape == (1, *SHAPE, 8)
    assert_close(img[0].as_tensor(), torch.as_tensor(_expected_linear(img, img.affine)), atol=0.011, rtol=0)
    assert _assert_matches_sitk_files(img, files) == 4 * 7  # the moved slice is not on the grid


def test_identical_duplicates_are_dropped_on_request_conflicting_ones_never(tmp_path: Path) -> None:
    volume = np.random.default_rng(2).uniform(-1000.0, 1000.0, (*SHAPE, 6))
    write_ct_series(tmp_path / "clean", volume, (SX, SY, 2.0), seed=3)
    write_ct_series(tmp_path / "dup", volume, (SX, SY, 2.0), seed=3)
    write_ct_series(tmp_path / "dup", volume[:, :, 2:4], (SX, SY, 2.0), (0, 0, 4.0), seed=3, instance_offset=50)
    with pytest.raises(GeometryError, match="slices 3 and 4 share a position; slices 5 and 6 share a position"):
        load_volume(tmp_path / "dup")
    img = load_volume(tmp_path / "dup", on_irregular="resample")  # nothing to interpolate: no warning
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "clean")))
    reference = reader.Execute()
    assert_close(img[0].as_tensor().double(), sitk_xyz(reference))
    assert_close(img.affine, sitk_affine_ras(reference), atol=1e-6, rtol=0)
    write_ct_series(tmp_path / "clash", volume, (SX, SY, 2.0), seed=4)
    write_ct_series(tmp_path / "clash", volume[:, :, :1] + 5.0, (SX, SY, 2.0), seed=4, instance_offset=50)
    with pytest.raises(GeometryError, match=r"slices 1 and 2 .* share a position .* but hold different pixels"):
        load_volume(tmp_path / "clash", on_irregular="resample")


def _tilted(n: int, shift_rows: float) -> np.ndarray:
    """Positions advancing 2 mm along the normal and ``shift_rows`` pixels along the columns per slice."""
    _, c, normal = _axes()
    return np.array([10.0, -20.0, 30.0]) + np.arange(n)[:, None] * (2.0 * normal + shift_rows * SY * c)


def test_tilt_is_an_error_by_default(tmp_path: Path) -> None:
    _linear_series(tmp_path, _tilted(8, 1.0), series_description="Head tilted")
    with pytest.raises(GeometryError, match=r"'Head tilted' .*gantry tilt of about 26.57 degrees.*on_tilt='resample'"):
        load_volume(tmp_path)


def test_tilt_resampled_keeps_world_coordinates_where_simpleitk_shears(tmp_path: Path) -> None:
    files = _linear_series(tmp_path, _tilted(8, 1.0))
    with pytest.warns(UserWarning, match="gantry tilt"):
        img = load_volume(tmp_path, on_tilt="resample", dtype=torch.float64)
    assert img.shape == (1, *SHAPE, 8) and img.meta["resampled"] == "gantry tilt"
    affine = img.affine[:3, :3].numpy()
    assert_close(torch.as_tensor(affine.T @ affine), torch.diag(torch.tensor([SX, SY, 2.0]) ** 2).double())
    assert _assert_matches_sitk_files(img, files) >= 20  # integer shifts: source pixels land on the grid
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path)))
    sheared = reader.Execute()
    truth = _tilted(8, 1.0)[5]  # where slice 5's first pixel really is (LPS)
    assert np.linalg.norm(np.asarray(sheared.TransformIndexToPhysicalPoint((0, 0, 5))) - truth) > 4.0


def test_fractional_tilt_is_exact_for_a_linear_image(tmp_path: Path) -> None:
    _linear_series(tmp_path, _tilted(6, 0.4))
    with pytest.warns(UserWarning, match="gantry tilt"):
        img = load_volume(tmp_path, on_tilt="resample", dtype=torch.float64)
    expected = torch.as_tensor(_expected_linear(img, img.affine))
    inner = (slice(None), slice(3, -3), slice(None))  # away from the edges the shifts move in from
    assert_close(img[0].as_tensor()[inner], expected[inner], atol=0.011, rtol=0)


def test_options_are_validated(tmp_path: Path) -> None:
    _linear_series(tmp_path, _regular(3))
    with pytest.raises(ConfigError, match="on_tilt must be 'error' or 'resample', got 'fix'"):
        load_volume(tmp_path, on_tilt="fix")  # type: ignore[arg-type]
