"""`medxlate translate ... --format dicom`: a DICOM series on the NIfTI output's grid and values."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.training import fit
from tests.conftest import phantom, tiny_config
from tests.dicom_factory import write_ct_series
from tests.io.test_dicom_export import assert_same_grid_and_values
from tests.test_cli import run_cli


def test_translate_a_dicom_series_to_dicom(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    checkpoint = fit(validate_config(tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)))
    ct, _, _ = phantom(5)
    write_ct_series(tmp_path / "ct", ct.astype(float), spacing=(1.5, 1.25, 3.0), row_dir=(-1, 0, 0), col_dir=(0, 1, 0))
    code, out, err = run_cli(
        monkeypatch, capsys, "translate", str(checkpoint.checkpoint), str(tmp_path / "ct"), str(tmp_path / "sdicom"),
        "--format", "dicom", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert f"synthetic DICOM series: {tmp_path / 'sdicom'}" in out
    code, _, err = run_cli(
        monkeypatch, capsys, "translate", str(checkpoint.checkpoint), str(tmp_path / "ct"), str(tmp_path / "s.nii.gz"),
        "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    files = sorted((tmp_path / "sdicom").iterdir())
    first = pydicom.dcmread(files[0])
    source = pydicom.dcmread(next((tmp_path / "ct").iterdir()), stop_before_pixels=True)
    assert first.Modality == "MR" and first.StudyInstanceUID == source.StudyInstanceUID
    assert first.SeriesDescription == f"SYNTHETIC MR by medxlate model tiny {Path(checkpoint.checkpoint).name}"
    assert (tmp_path / "sdicom.json").is_file()  # provenance sidecar next to the folder
    assert_same_grid_and_values(tmp_path / "sdicom", tmp_path / "s.nii.gz", float(first.RescaleSlope) / 2 + 1e-4)
    code, _, err = run_cli(
        monkeypatch, capsys, "translate", str(checkpoint.checkpoint), str(tmp_path / "ct"), str(tmp_path / "sdicom"),
        "--format", "dicom",
    )  # fmt: skip
    assert code == 2 and "exists and is not empty" in err
