"""``translate`` never replaces its input and hashes it before writing (issue 6, item 8)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medxlate.checkpoint import save_checkpoint
from medxlate.errors import OutputError
from medxlate.inference import Translator
from medxlate.transforms import Preprocessing
from tests.conftest import phantom, tiny_affine, write_nifti
from tests.dicom_factory import write_ct_series


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny generator: enough to exercise file handling."""
    from medxlate.models import build_generator

    spec = {
        "name": "unet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 1,
        "params": {"num_downs": 3, "ngf": 4},
    }
    generator = build_generator("unet", 2, 1, 1, num_downs=3, ngf=4)
    prep = Preprocessing((-1024.0, 3071.0), (0.5, 99.5), target_range=(0.0, 1000.0), divisible=8)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    payload = {"generator": generator.state_dict(), "generator_spec": spec, "preprocessing": prep.to_dict()}
    return save_checkpoint({**payload, "target_modality": "MR", "config": {"name": "tiny"}}, path)


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    path = tmp_path / "x.nii.gz"
    write_nifti(phantom(0)[0], path, tiny_affine())
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_translate_onto_its_own_input_is_refused(checkpoint: Path, scan: Path, tmp_path: Path) -> None:
    original = scan.read_bytes()
    (tmp_path / "link.nii.gz").symlink_to(scan)
    os.link(scan, tmp_path / "hard.nii.gz")
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    for output in (scan, tmp_path / "link.nii.gz", tmp_path / "hard.nii.gz"):
        with pytest.raises(OutputError, match=rf"output {output}: it is the input {scan} itself"):
            translator.translate_file(scan, output)
    assert scan.read_bytes() == original
    assert not (tmp_path / "x.json").exists()


def test_cli_translate_x_to_x_exits_2_and_keeps_the_scan(checkpoint: Path, scan: Path) -> None:
    from medxlate.cli import app

    original = scan.read_bytes()
    result = CliRunner().invoke(app, ["translate", str(checkpoint), str(scan), str(scan), "--device", "cpu"])
    assert result.exit_code != 0 and isinstance(result.exception, OutputError)
    assert scan.read_bytes() == original


def test_output_inside_a_dicom_series_folder_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    series = tmp_path / "series"
    write_ct_series(series, phantom(1, (16, 16, 4))[0].astype(np.float64), spacing=(0.8, 0.8, 2.0))
    before = sorted(p.name for p in series.iterdir())
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    with pytest.raises(OutputError, match="lies inside the input folder"):
        translator.translate_file(series, series / "synthetic.nii.gz")
    assert sorted(p.name for p in series.iterdir()) == before


def test_sidecar_records_the_input_hash_taken_before_writing(checkpoint: Path, scan: Path, tmp_path: Path) -> None:
    expected = _sha256(scan)
    written = Translator.from_checkpoint(checkpoint, device="cpu").translate_file(scan, tmp_path / "out.nii.gz")
    sidecar = json.loads((tmp_path / "out.json").read_text())
    assert sidecar["source_sha256"] == expected != _sha256(written)


def test_dicom_provenance_traces_the_series(checkpoint: Path, tmp_path: Path) -> None:
    """Issue 6, item 4: a DICOM input's sidecar names its series, file count, content hash and geometry."""
    import nibabel as nib
    import pydicom
    import SimpleITK as sitk

    series = tmp_path / "hospital" / "series"
    files = write_ct_series(
        series, phantom(2, (16, 16, 5))[0].astype(np.float64), spacing=(0.8, 0.6, 2.0), row_dir=(-1.0, 0.0, 0.0)
    )
    (series / "notes.txt").write_text("not DICOM")  # ignored by the reader and by the hash
    out = Translator.from_checkpoint(checkpoint, device="cpu").translate_file(series, tmp_path / "out" / "syn.nii.gz")
    record = json.loads((tmp_path / "out" / "syn.json").read_text())
    source = record["source"]
    uid = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    per_file = sorted(_sha256(p) for p in files)
    assert source["series_instance_uid"] == uid and source["kind"] == "dicom_series"
    assert source["files"] == len(files) == 5 and source["modality"] == "CT"
    assert source["sha256"] == hashlib.sha256("\n".join(per_file).encode()).hexdigest() == record["source_sha256"]
    assert source["path"] == str(series.resolve())
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series)))
    image = reader.Execute()
    assert source["shape"] == list(image.GetSize()) == [16, 16, 5]
    np.testing.assert_allclose(source["spacing_mm"], image.GetSpacing(), rtol=0, atol=1e-9)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    direction = lps_to_ras @ np.asarray(image.GetDirection()).reshape(3, 3)
    assert source["orientation"] == "".join(nib.aff2axcodes(np.block([[direction, np.zeros((3, 1))], [0, 0, 0, 1]])))
    assert source["orientation"] == "RPI"  # row -x, column +y: the normal points inferior
    np.testing.assert_allclose(np.asarray(source["affine_ras"]), nib.load(str(out)).affine, rtol=0, atol=1e-5)
    assert record["preprocessing"]["source_window"] == [-1024.0, 3071.0]
    assert record["preprocessing"]["inference"]["kind"] == "slices"
    assert record["preprocessing"]["model_spacing_mm"] is None  # no recorded domain, no pixdim: its own spacing
    assert record["checkpoint"] == str(checkpoint.resolve())


def test_identifier_keys_are_still_refused_outside_the_allowed_ones(tmp_path: Path) -> None:
    from medxlate.errors import InputDataError
    from medxlate.io import write_provenance

    with pytest.raises(InputDataError, match=r"identifier keys \['source.patient_id'\]"):
        write_provenance(
            tmp_path / "a.nii.gz",
            {"source": {"series_instance_uid": "1.2", "patient_id": "P"}},
            allow_identifiers={"source.series_instance_uid"},
        )
