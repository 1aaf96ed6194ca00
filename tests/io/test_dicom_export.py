"""DICOM export: dciodvfy finds no errors; SimpleITK reads the series back on the NIfTI output's grid."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from medxlate.errors import GeometryError, InputDataError
from medxlate.io import load_volume, save_volume
from medxlate.io.dicom_export import save_dicom_series
from tests.dicom_factory import write_ct_series


def validation_errors(validator: str, files: list[Path]) -> list[str]:
    lines = []
    for file in files:
        result = subprocess.run([validator, str(file)], capture_output=True, text=True, timeout=60)
        lines += [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
    return lines


def read_sitk(path: Path) -> tuple[np.ndarray, tuple, tuple, tuple]:
    """(X, Y, Z) array, origin, spacing, direction (LPS) as SimpleITK reads a series folder or file."""
    import SimpleITK as sitk

    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        image = reader.Execute()
    else:
        image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float64)
    return array, image.GetOrigin(), image.GetSpacing(), image.GetDirection()


def assert_same_grid_and_values(dicom_folder: Path, nifti: Path, tolerance: float) -> None:
    """Every NIfTI voxel centre is a DICOM voxel centre (either may order its slices differently),
    and the values there agree within ``tolerance``; both read by SimpleITK."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(dicom_folder)))
    dicom, reference = reader.Execute(), sitk.ReadImage(str(nifti))
    assert dicom.GetSize() == reference.GetSize()
    size = reference.GetSize()
    for corner in np.ndindex(2, 2, 2):
        index = [int(c * (n - 1)) for c, n in zip(corner, size, strict=True)]
        point = reference.TransformIndexToPhysicalPoint(index)
        continuous = np.asarray(dicom.TransformPhysicalPointToContinuousIndex(point))
        np.testing.assert_allclose(continuous, np.round(continuous), rtol=0, atol=1e-4)
        assert all(0 <= v <= n - 1 for v, n in zip(np.round(continuous), size, strict=True))
    on_grid = sitk.Resample(dicom, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0, sitk.sitkFloat64)
    torch.testing.assert_close(
        torch.from_numpy(sitk.GetArrayFromImage(on_grid)),
        torch.from_numpy(sitk.GetArrayFromImage(reference).astype(np.float64)),
        rtol=0,
        atol=tolerance,
    )


@pytest.fixture
def source_series(tmp_path: Path) -> Path:
    """A CT series with a flipped row direction, anisotropic spacing and an offset origin."""
    values = np.random.default_rng(0).integers(-1000, 2000, size=(10, 12, 5)).astype(np.float64)
    write_ct_series(
        tmp_path / "src", values, spacing=(0.8, 1.3, 2.5), origin=(10, -20, 30), row_dir=(-1, 0, 0), col_dir=(0, 1, 0)
    )
    return tmp_path / "src"


@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_series_is_valid_and_overlays_the_nifti(
    modality: str, source_series: Path, tmp_path: Path, dciodvfy: str
) -> None:
    source = load_volume(source_series)
    synthetic = source * 0.37 + 12.3  # float values with a fractional part
    files = save_dicom_series(synthetic, tmp_path / "out", modality=modality, source=source_series, model="demo run 1")
    assert len(files) == 5
    assert validation_errors(dciodvfy, [files[0], files[-1]]) == []
    nifti = save_volume(synthetic, tmp_path / "synthetic.nii.gz")
    dicom_values, *dicom_grid = read_sitk(tmp_path / "out")
    nifti_values, *nifti_grid = read_sitk(nifti)
    for ours, theirs in zip(dicom_grid, nifti_grid, strict=True):
        torch.testing.assert_close(
            torch.tensor(ours, dtype=torch.float64), torch.tensor(theirs, dtype=torch.float64), rtol=0, atol=1e-5
        )
    slope = float(pydicom.dcmread(files[0]).RescaleSlope)
    assert slope < 0.02
    # half a rescale step, plus float32 rounding of values ~1000 in both readers
    tolerance = slope / 2 + 1e-4
    torch.testing.assert_close(torch.from_numpy(dicom_values), torch.from_numpy(nifti_values), rtol=0, atol=tolerance)

    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(source_series.iterdir())]
    by_uid = {str(s.SOPInstanceUID): s for s in src}
    out = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    expected_class = "1.2.840.10008.5.1.4.1.1.4" if modality == "MR" else "1.2.840.10008.5.1.4.1.1.2"
    assert {o.SOPClassUID for o in out} == {expected_class}
    assert {o.StudyInstanceUID for o in out} == {src[0].StudyInstanceUID}
    assert {o.FrameOfReferenceUID for o in out} == {src[0].FrameOfReferenceUID}
    assert {o.PatientName for o in out} == {src[0].PatientName} and {o.PatientID for o in out} == {src[0].PatientID}
    assert len({o.SeriesInstanceUID for o in out}) == 1 and out[0].SeriesInstanceUID != src[0].SeriesInstanceUID
    assert len({o.SOPInstanceUID for o in out} | set(by_uid)) == 10
    for o in out:
        assert list(o.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert o.SeriesDescription == f"SYNTHETIC {modality} by medxlate model demo run 1"
        assert "not acquired" in o.DerivationDescription
        referenced = by_uid[o.SourceImageSequence[0].ReferencedSOPInstanceUID]
        np.testing.assert_allclose(
            [float(v) for v in o.ImagePositionPatient], [float(v) for v in referenced.ImagePositionPatient], atol=1e-4
        )
        assert o.ReferencedSeriesSequence[0].SeriesInstanceUID == src[0].SeriesInstanceUID
        assert len(o.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == 5


def test_without_source_series_a_new_anonymous_study_is_warned(
    tmp_path: Path, dciodvfy: str, caplog: pytest.LogCaptureFixture
) -> None:
    from monai.data import MetaTensor

    affine = torch.tensor(
        [[-1.5, 0, 0, 40.0], [0, 1.25, 0, -25.0], [0, 0, 3.0, 60.0], [0, 0, 0, 1]], dtype=torch.float64
    )
    synthetic = MetaTensor(torch.rand(1, 8, 6, 4, dtype=torch.float64) * 900, affine=affine)
    with caplog.at_level(logging.WARNING):
        files = save_dicom_series(synthetic, tmp_path / "out", modality="MR", source=None, model="m")
    assert "no source DICOM series" in caplog.text and "anonymous" in caplog.text
    assert validation_errors(dciodvfy, [files[0], files[-1]]) == []
    first = pydicom.dcmread(files[0])
    assert first.PatientName == "" and first.PatientID == "" and "SourceImageSequence" not in first
    tolerance = float(first.RescaleSlope) / 2 + 1e-4
    assert_same_grid_and_values(tmp_path / "out", save_volume(synthetic, tmp_path / "synthetic.nii.gz"), tolerance)


def test_refusals(source_series: Path, tmp_path: Path) -> None:
    source = load_volume(source_series)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(InputDataError, match="exists and is not empty"):
        save_dicom_series(source, tmp_path / "busy", modality="CT", source=source_series, model="m")
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["keep.txt"]
    sheared = source.clone()
    sheared.affine = torch.tensor([[1.0, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    with pytest.raises(GeometryError, match="orthogonal grid"):
        save_dicom_series(sheared, tmp_path / "new", modality="CT", source=source_series, model="m")
    nan = source.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputDataError, match="NaN"):
        save_dicom_series(nan, tmp_path / "new", modality="CT", source=source_series, model="m")
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "src"]  # no staging folder left


def test_export_streams_and_encodes_the_series_header_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays at a few slices (no whole-volume temporary) and the per-series sequences are
    encoded once, not once per slice (which made a 133-slice export quadratic); pixels are exact."""
    import tracemalloc

    import pydicom.filewriter
    from monai.data import MetaTensor

    from medxlate.io.dicom_export import read_source_series

    n = 48
    write_ct_series(tmp_path / "src", np.zeros((4, 4, n)), spacing=(128 / 4, 128 / 4, 1.0))
    source = read_source_series(tmp_path / "src")
    affine = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    values = np.random.default_rng(0).normal(100.0, 400.0, (128, 128, n)).astype(np.float32)
    synthetic = MetaTensor(torch.from_numpy(values), affine=affine)
    save_dicom_series(synthetic[..., :2], tmp_path / "warm-up", modality="CT", source=None, model="m")  # imports
    items = []
    original = pydicom.filewriter.write_sequence_item
    monkeypatch.setattr(pydicom.filewriter, "write_sequence_item", lambda *a: items.append(1) or original(*a))
    tracemalloc.start()
    try:
        files = save_dicom_series(synthetic, tmp_path / "out", modality="CT", source=source, model="m")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(items) <= 2 * n + 2  # n + 1 referenced items once, one SourceImageSequence item per slice
    assert peak < values.nbytes / 6  # ~1/9 here; a NaN mask alone is 1/4 of the volume
    first = pydicom.dcmread(files[0])
    assert len(first.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == n
    slope, intercept = float(first.RescaleSlope), float(first.RescaleIntercept)
    for k in (0, n - 1):
        expected = np.rint((values[:, :, k].T - intercept) / slope).clip(0, 65535).astype("<u2")
        np.testing.assert_array_equal(pydicom.dcmread(files[k]).pixel_array, expected)
