"""Localizers inside a series, MONOCHROME1, enhanced multi-frame, unsupported layouts, series selection."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from torch.testing import assert_close

from medxlate.errors import GeometryError, InputDataError
from medxlate.io import load_volume, scan_dicom
from tests.dicom_factory import slice_values_hu, write_ct_series, write_enhanced_series
from tests.io.geometry_helpers import rotation, sitk_affine_ras, sitk_xyz

SHAPE = (16, 12, 8)
SPACING = (0.7, 0.9, 2.5)
VOLUME = np.random.default_rng(11).uniform(-1000.0, 1500.0, SHAPE)


def _sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _oblique() -> tuple[np.ndarray, np.ndarray]:
    axes = rotation(15.0, -20.0)
    return axes[:, 0], axes[:, 1]


@pytest.mark.parametrize("kind", ["marked", "other orientation", "other size"])
def test_localizers_inside_a_series_are_excluded_with_a_warning(tmp_path: Path, kind: str) -> None:
    row, col = _oblique()
    for folder in ("clean", "mixed"):
        write_ct_series(
            tmp_path / folder, VOLUME, SPACING, (3.0, 4.0, 5.0), row, col, seed=2, series_description="Neck"
        )
    scout = {
        "marked": {"image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER"), "row_dir": row, "col_dir": col},
        "other orientation": {"row_dir": (1.0, 0.0, 0.0), "col_dir": (0.0, 0.0, -1.0)},
        "other size": {"row_dir": row, "col_dir": col},
    }[kind]
    scout_volume = np.zeros((20, 20, 2)) if kind == "other size" else VOLUME[:, :, :2]
    write_ct_series(
        tmp_path / "mixed", scout_volume, SPACING, seed=2, instance_offset=70, series_description="Neck", **scout
    )
    with pytest.warns(UserWarning, match=r"DICOM series 'Neck' \(CT, 10 files\) in .*: 2 of 10 images set aside"):
        img = load_volume(tmp_path / "mixed")
    reference = _sitk_series(tmp_path / "clean")
    assert_close(img[0].as_tensor().double(), sitk_xyz(reference))
    assert_close(img.affine, sitk_affine_ras(reference), atol=1e-5, rtol=0)


def test_monochrome1_is_inverted_over_the_stored_range_before_the_rescale(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "ct", VOLUME, SPACING, slope=0.5, intercept=-1000.0, photometric="MONOCHROME1")
    img = load_volume(tmp_path / "ct", dtype=torch.float64)
    stored = np.rint((VOLUME + 1000.0) / 0.5)
    assert_close(img[0].as_tensor(), torch.as_tensor(0.5 * (-32768 + 32767 - stored) - 1000.0), rtol=0, atol=0)
    assert img.meta["monochrome1_inverted"] and img.meta["photometric_interpretation"] == "MONOCHROME1"
    assert_close(img.affine, sitk_affine_ras(_sitk_series(tmp_path / "ct")), atol=1e-6, rtol=0)
    xray = np.random.default_rng(1).uniform(0.0, 4000.0, (10, 8, 1))
    (path,) = write_ct_series(
        tmp_path / "cr", xray, modality="MR", signed=False, intercept=0.0, photometric="MONOCHROME1"
    )
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.save_as(path, enforce_file_format=True)
    assert_close(
        load_volume(path, dtype=torch.float64)[0, ..., 0].as_tensor(), torch.as_tensor(4095.0 - np.rint(xray[..., 0]))
    )


def test_enhanced_multiframe_matches_simpleitk(tmp_path: Path) -> None:
    row, col = _oblique()
    path = write_enhanced_series(
        tmp_path / "ct.dcm", VOLUME, SPACING, (3.0, -4.0, 5.0), row, col, slope=0.5, intercept=-1000.0
    )
    img = load_volume(path, dtype=torch.float64)
    reference = sitk.ReadImage(str(path))
    assert img.shape == (1, *SHAPE)
    assert_close(img[0].as_tensor(), sitk_xyz(reference))
    assert_close(img[0].as_tensor(), torch.as_tensor(slice_values_hu(VOLUME, 0.5, -1000.0)))
    assert_close(img.affine, sitk_affine_ras(reference), atol=1e-5, rtol=0)


def test_enhanced_frames_are_sorted_by_position_with_per_frame_rescale(tmp_path: Path) -> None:
    slopes = [0.5, 1.0, 2.0, 1.0, 0.25, 1.0, 0.5, 1.0]
    volume = np.clip(VOLUME, -1000.0, 1000.0)
    shuffled = write_enhanced_series(
        tmp_path / "mr.dcm",
        volume,
        SPACING,
        modality="MR",
        slope=slopes,
        intercept=-1000.0,
        per_frame_rescale=True,
        frame_order="shuffled",
    )
    img = load_volume(shuffled, dtype=torch.float64)
    assert_close(img[0].as_tensor(), torch.as_tensor(slice_values_hu(volume, slopes, -1000.0)))
    (series,) = scan_dicom(tmp_path).series
    assert series.flags == ("multiframe",) and series.n_slices == 8 and series.n_instances == 1


def test_multiframe_without_per_frame_positions_is_refused(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path, VOLUME[:, :, :1], SPACING, series_description="Cine")
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(GeometryError, match=r"'Cine' \(CT, 1 files\).*2 of 3 images lack ImagePositionPatient"):
        load_volume(path)


def test_colour_images_are_refused(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path, VOLUME[:, :, :1], SPACING, series_description="Photo")
    ds = pydicom.dcmread(path)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes(ds.Rows * ds.Columns * 3)
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputDataError, match=r"'Photo'.*PhotometricInterpretation RGB with 3 sample\(s\) per pixel"):
        load_volume(tmp_path)


def test_series_uid_picks_one_series_from_a_tree(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "a" / "ct", VOLUME, SPACING, seed=1, series_description="Chest")
    write_ct_series(
        tmp_path / "a" / "ct", VOLUME[:, :, :3] + 5.0, SPACING, seed=3, series_number=2, series_description="Other"
    )
    write_ct_series(tmp_path / "b", VOLUME + 1.0, SPACING, seed=2, series_description="Chest later")
    with pytest.raises(InputDataError, match=r"holds 2 series: .*'Chest' \(CT, 8 files\).*series_uid="):
        load_volume(tmp_path / "a" / "ct")
    chest = next(s for s in scan_dicom(tmp_path).series if s.description == "Chest")
    img = load_volume(tmp_path, series_uid=chest.series_uid)
    assert_close(img, load_volume(tmp_path / "a" / "ct", series_uid=chest.series_uid))
    assert img.shape == (1, *SHAPE) and img.meta["filename_or_obj"] == str(tmp_path)
    with pytest.raises(InputDataError, match="no DICOM series with the given series_uid") as info:
        load_volume(tmp_path, series_uid="1.2.3.4.5.6")
    assert "1.2.3.4.5.6" not in str(info.value) and "'Chest later' (CT, 8 files)" in str(info.value)


def test_a_file_with_unreadable_geometry_is_named(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path, VOLUME, SPACING, shuffle=False)
    ds = pydicom.dcmread(paths[2])
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1"]  # five values
    ds.save_as(paths[2], enforce_file_format=True)
    with pytest.raises(InputDataError, match=r"slice_0002.dcm: ImageOrientationPatient is '1\\\\0\\\\0\\\\0\\\\1'"):
        load_volume(tmp_path)


def test_single_file_keeps_working_without_position(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path, VOLUME[:, :, :1], SPACING, series_description="Radiograph")
    ds = pydicom.dcmread(path)
    del ds.ImagePositionPatient, ds.ImageOrientationPatient
    ds.save_as(path, enforce_file_format=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = load_volume(path)
    assert any("'Radiograph'" in str(w.message) and "identity orientation" in str(w.message) for w in caught)
    assert img.shape == (1, 16, 12, 1)


def test_dicom_volumes_keep_dicom_memory_order(tmp_path: Path) -> None:
    """x fastest, like ITK: no transposing copy of the whole volume (see load._load_dicom)."""
    write_ct_series(tmp_path, VOLUME, SPACING)
    img = load_volume(tmp_path)
    assert img.stride()[1:] == (1, SHAPE[0], SHAPE[0] * SHAPE[1])
    assert_close(img.contiguous(), img)
