"""The synthetic DICOM writer itself: valid, deterministic, shuffled on disk, nothing real in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.dicom_factory import write_ct_series, write_enhanced_series


def test_series_is_valid_deterministic_and_shuffled(tmp_path: Path) -> None:
    volume = np.random.default_rng(0).uniform(-1000.0, 1000.0, (4, 3, 6))
    first = write_ct_series(tmp_path / "a", volume, (0.5, 0.6, 2.0), seed=5)
    second = write_ct_series(tmp_path / "b", volume, (0.5, 0.6, 2.0), seed=5)
    assert [p.name for p in first] == [p.name for p in second]
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(first, second, strict=True))
    assert [p.name for p in first] != sorted(p.name for p in first)  # directory order is not slice order

    datasets = [pydicom.dcmread(p) for p in first]
    assert {str(ds.SOPClassUID) for ds in datasets} == {pydicom.uid.CTImageStorage}
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(datasets)
    assert str(datasets[0].PatientName) == "Test^Synthetic" and datasets[0].PatientID == "FAKE-0001"
    ds = datasets[2]
    assert [float(v) for v in ds.PixelSpacing] == [0.6, 0.5]  # row spacing first
    assert ds.pixel_array.shape == (3, 4)  # (Rows, Columns) = (Y, X)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(hu, np.rint(volume[:, :, 2].T))


def test_other_seed_gives_other_uids(tmp_path: Path) -> None:
    volume = np.zeros((2, 2, 2))
    a = pydicom.dcmread(write_ct_series(tmp_path / "a", volume, seed=1)[0])
    b = pydicom.dcmread(write_ct_series(tmp_path / "b", volume, seed=2)[0])
    assert a.SeriesInstanceUID != b.SeriesInstanceUID and a.StudyInstanceUID != b.StudyInstanceUID


def test_values_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not fit uint16"):
        write_ct_series(tmp_path, np.full((2, 2, 2), -2000.0), intercept=-1024.0, signed=False)


def test_explicit_positions_bits_photometric_and_added_instances(tmp_path: Path) -> None:
    volume = np.random.default_rng(1).uniform(0.0, 200.0, (4, 3, 3))
    positions = [(0.0, 0.0, 0.0), (0.0, 1.0, 2.0), (0.0, 2.0, 7.0)]
    paths = write_ct_series(
        tmp_path,
        volume,
        positions=positions,
        bits=8,
        signed=False,
        intercept=0.0,
        photometric="MONOCHROME1",
        image_type=("DERIVED", "SECONDARY", "LOCALIZER"),
        seed=3,
    )
    more = write_ct_series(tmp_path, volume[:, :, :1], bits=8, signed=False, intercept=0.0, seed=3, instance_offset=9)
    datasets = [pydicom.dcmread(p) for p in paths + more]
    assert [[float(v) for v in ds.ImagePositionPatient] for ds in datasets[:3]] == [list(p) for p in positions]
    assert {ds.BitsAllocated for ds in datasets} == {8} and datasets[0].PhotometricInterpretation == "MONOCHROME1"
    assert list(datasets[0].ImageType) == ["DERIVED", "SECONDARY", "LOCALIZER"]
    assert len({ds.SOPInstanceUID for ds in datasets}) == 4 and len({p.name for p in paths + more}) == 4
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1


def test_enhanced_series_has_functional_groups(tmp_path: Path) -> None:
    volume = np.random.default_rng(2).uniform(-1000.0, 1000.0, (4, 3, 5))
    path = write_enhanced_series(
        tmp_path / "e.dcm",
        volume,
        (0.5, 0.6, 2.0),
        slope=[1, 2, 1, 1, 0.5],
        per_frame_rescale=True,
        frame_order="shuffled",
    )
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.EnhancedCTImageStorage and ds.NumberOfFrames == 5
    assert ds.pixel_array.shape == (5, 3, 4)
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.6, 0.5]
    z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in ds.PerFrameFunctionalGroupsSequence]
    assert sorted(z) == [0.0, 2.0, 4.0, 6.0, 8.0] and z != sorted(z)
    with pytest.raises(ValueError, match="per_frame_rescale"):
        write_enhanced_series(tmp_path / "f.dcm", volume, slope=[1, 2, 1, 1, 0.5])
