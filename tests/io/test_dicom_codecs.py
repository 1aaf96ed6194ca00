"""Compressed transfer syntaxes decode to the same values as the uncompressed series (and as SimpleITK)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from torch.testing import assert_close

from medxlate.io import load_volume, scan_dicom
from tests.dicom_factory import write_ct_series
from tests.io.dicom_objects import SYNTAXES, recompress
from tests.io.geometry_helpers import sitk_affine_ras, sitk_xyz

SHAPE = (32, 32, 4)  # JPEG 2000 (openjpeg, 6 resolutions) needs at least 32x32
SPACING = (0.8, 0.6, 3.0)
LOSSLESS = ["rle", "jpeg-ls", "jpeg2000", "deflate", "jpeg-lossless"]


def _pair(tmp_path: Path, syntax: str, signed: bool = True) -> tuple[Path, Path]:
    volume = np.random.default_rng(4).uniform(-1000.0, 1800.0, SHAPE)
    plain, packed = tmp_path / "plain", tmp_path / syntax
    for seed, folder in enumerate((plain, packed)):
        origin = (5.0, -3.0, 20.0)
        paths = write_ct_series(
            folder,
            volume,
            SPACING,
            origin,
            slope=0.5,
            seed=seed,
            signed=signed,
            intercept=-1000.0 if signed else -1024.0,
        )
    recompress(paths, syntax)
    return plain, packed


@pytest.mark.parametrize(
    ("syntax", "signed"), [(s, True) for s in LOSSLESS] + [("jpeg-ls", False), ("jpeg2000", False), ("rle", False)]
)
def test_lossless_syntaxes_equal_the_uncompressed_series_and_simpleitk(
    tmp_path: Path, syntax: str, signed: bool
) -> None:
    plain, packed = _pair(tmp_path, syntax, signed=signed)
    assert pydicom.dcmread(next(packed.iterdir())).file_meta.TransferSyntaxUID == SYNTAXES[syntax]
    expected, img = load_volume(plain, dtype=torch.float64), load_volume(packed, dtype=torch.float64)
    assert_close(img.as_tensor(), expected.as_tensor(), rtol=0, atol=0)
    assert_close(img.affine, expected.affine, rtol=0, atol=0)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(packed)))
    reference = reader.Execute()
    assert_close(img[0].as_tensor(), sitk_xyz(reference))
    assert_close(img.affine, sitk_affine_ras(reference), atol=1e-5, rtol=0)


def test_jpeg_baseline_8bit_equals_pydicom_decoding_and_is_close_to_the_original(tmp_path: Path) -> None:
    volume = np.random.default_rng(5).uniform(0.0, 255.0, SHAPE)
    volume[8:24, 8:24] = 200.0  # some flat structure, as real images have
    plain, packed = tmp_path / "plain", tmp_path / "jpeg"
    for seed, folder in enumerate((plain, packed)):
        paths = write_ct_series(folder, volume, SPACING, modality="MR", bits=8, signed=False, intercept=0.0, seed=seed)
    recompress(paths, "jpeg-baseline")
    img = load_volume(packed, dtype=torch.float64)
    by_pydicom = torch.zeros_like(img[0].as_tensor())
    for path in packed.iterdir():  # the reference decoding of each slice, placed by its position
        ds = pydicom.dcmread(path)
        k = round(float(ds.ImagePositionPatient[2]) / SPACING[2])
        by_pydicom[:, :, k] = torch.as_tensor(ds.pixel_array.T.astype(np.float64))
    assert_close(img[0].as_tensor(), by_pydicom, rtol=0, atol=0)
    error = (img - load_volume(plain, dtype=torch.float64)).abs()
    assert float(error.mean()) < 8.0 and float(error.max()) < 80.0  # lossy (quality 90, noise image)


def test_scan_flags_compressed_series_with_their_syntax(tmp_path: Path) -> None:
    _, packed = _pair(tmp_path, "jpeg2000")
    (series,) = [s for s in scan_dicom(tmp_path).series if "compressed" in s.flags]
    assert series.transfer_syntax == "JPEG 2000 Image Compression (Lossless Only)"
    assert series.details["compressed"] == "JPEG 2000 Image Compression (Lossless Only)"
    assert series.files[0].parent == packed
