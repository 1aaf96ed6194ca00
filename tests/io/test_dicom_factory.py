"""The synthetic DICOM writer itself: valid, deterministic, shuffled on disk, nothing real in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.dicom_factory import write_ct_series


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
