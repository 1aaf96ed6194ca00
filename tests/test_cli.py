"""CLI: bad input gives one 'error:' line (no traceback) and exit code 2; the pipeline runs end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from medxlate.cli import main
from tests.conftest import tiny_config


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["medxlate", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "missing.yaml"], "missing.yaml: config file not found"),
        (["translate", "missing.pt", "ct.nii.gz", "out.nii.gz"], "missing.pt: checkpoint not found"),
        (["prepare", "no_such_folder", "out"], "no_such_folder/manifest.json: no manifest found"),
        (["run", "nope.yaml"], "nope.yaml: config file not found"),
    ],
)
def test_bad_input_is_one_clear_line(
    args: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and expected in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_config_typo_from_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    raw = tiny_config(tmp_path / "ds", tmp_path / "run")
    raw["train"]["epohcs"] = 3
    config.write_text(yaml.safe_dump(raw))
    code, _, err = run_cli(monkeypatch, capsys, "train", str(config))
    assert code == 2 and "'train.epohcs': unknown key, did you mean 'epochs'?" in err
    assert not (tmp_path / "run").exists()


def test_source_target_shape_mismatch(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import phantom, tiny_affine, write_nifti

    _, mr, _ = phantom(1, shape=(20, 24, 9))
    write_nifti(mr, paired_folder / "patient_1" / "mr.nii.gz", tiny_affine())
    code, _, err = run_cli(monkeypatch, capsys, "prepare", str(paired_folder), str(tmp_path / "ds"))
    assert code == 2
    assert "patient_1/mr.nii.gz: target has shape (20, 24, 9), expected the source's (20, 24, 12)" in err
    assert not (tmp_path / "ds" / "dataset.json").exists()
    assert sorted(p.name for p in (tmp_path / "ds" / "cases").iterdir()) == ["case_000", "case_002"]


def test_pipeline_end_to_end(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import nibabel as nib
    import numpy as np

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    config = tmp_path / "config.yaml"
    raw = tiny_config(Path("unused"), Path("unused"), epochs=1, decay_epochs=0)
    raw["tracking"] = {"backend": "mlflow"}
    config.write_text(yaml.safe_dump(raw))
    pipeline = tmp_path / "pipe.yaml"
    pipeline.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "config": str(config),
                "input": str(paired_folder),
                "output_dir": "out",
            }
        )
    )
    code, out, err = run_cli(monkeypatch, capsys, "run", str(pipeline))
    assert code == 0, err
    translated = tmp_path / "out" / "translated" / "case_002_synthetic_mr.nii.gz"
    assert f"synthetic NIfTI:  out/translated/{translated.name}" in out
    assert "-m mlflow ui --backend-store-uri sqlite:///" in out
    source = nib.load(str(paired_folder / "patient_2" / "ct.nii.gz"))
    np.testing.assert_allclose(nib.load(str(translated)).affine, source.affine, atol=1e-5)
    header = (tmp_path / "out" / "evaluation" / "metrics_per_case.csv").read_text().splitlines()[0]
    assert header.startswith("case,ssim,psnr,mae,ssim_body,psnr_body,mae_body,data_range")
    assert (tmp_path / "out" / "evaluation" / "worst_best_cases.png").is_file()
    assert (tmp_path / "out" / "evaluation" / "metrics_boxplots.png").is_file()


def test_scan_table_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import numpy as np

    from tests.dicom_factory import write_ct_series

    volume = np.full((16, 16, 6), 40.0)
    write_ct_series(
        tmp_path / "export" / "a",
        volume,
        spacing=(0.8, 0.8, 2.5),
        series_description="Thorax 2.5mm",
        patient_name="Doe^Jane",
        patient_id="PID-98765",
    )
    write_ct_series(
        tmp_path / "export" / "b",
        volume,
        modality="MR",
        series_description="T1 axial",
        seed=3,
        patient_name="Doe^Jane",
        patient_id="PID-98765",
    )
    (tmp_path / "export" / "notes.txt").write_text("not dicom")
    code, out, err = run_cli(monkeypatch, capsys, "scan", str(tmp_path / "export"))
    assert code == 0, err
    assert "Thorax 2.5mm" in out and "T1 axial" in out
    assert "Doe" not in out and "PID-98765" not in out
    code, out, _ = run_cli(monkeypatch, capsys, "scan", str(tmp_path / "export"), "--json")
    assert code == 0
    data = json.loads(out)
    assert sorted(series["modality"] for series in data["series"]) == ["CT", "MR"]
    assert "PID-98765" not in out and all("series_uid" not in series for series in data["series"])
    # UIDs (and identifiers) only on explicit request, as the help says
    code, out, _ = run_cli(monkeypatch, capsys, "scan", str(tmp_path / "export"), "--json", "--identifiers")
    assert code == 0
    import pydicom

    first = next((tmp_path / "export" / "a").iterdir())
    expected_uid = pydicom.dcmread(first, stop_before_pixels=True).SeriesInstanceUID
    uids = {series["modality"]: series["series_uid"] for series in json.loads(out)["series"]}
    assert uids["CT"] == expected_uid and len(set(uids.values())) == 2
    code, out, _ = run_cli(monkeypatch, capsys, "scan", "--help")
    assert "includes series UIDs" not in out and "--identifiers" in out and "UIDs" in out


def test_verify_and_fingerprint(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "prepare", str(paired_folder), str(tmp_path / "ds"))
    assert code == 0, err
    code, out, _ = run_cli(monkeypatch, capsys, "verify", str(tmp_path / "ds"))
    assert code == 0 and "no problems found" in out
    code, out, _ = run_cli(monkeypatch, capsys, "fingerprint", str(tmp_path / "ds"))
    assert code == 0 and (tmp_path / "ds" / "fingerprint.json").is_file()
    (tmp_path / "ds" / "cases" / "case_001" / "target.nii.gz").unlink()
    code, out, err = run_cli(monkeypatch, capsys, "verify", str(tmp_path / "ds"))
    assert code == 2 and "case_001" in out and "problem(s) found" in err


def test_scan_and_prepare_a_messy_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from tests.data.dicom_tree import PATIENTS, write_export

    export = write_export(tmp_path / "export")
    code, out, err = run_cli(monkeypatch, capsys, "scan", str(export))
    assert code == 0, err
    assert "Topogram" in out and "non_image" in out and "not a DICOM Part-10 file" in out
    config = tmp_path / "prepare.yaml"
    config.write_text(yaml.safe_dump({"pairing": {"target": {"modality": "MR", "include": ["t1"]}}}))
    code, out, err = run_cli(
        monkeypatch,
        capsys,
        "prepare",
        str(export),
        str(tmp_path / "ds"),
        "--config",
        str(config),
        "--id-map",
        str(tmp_path / "private" / "ids.csv"),
    )
    assert code == 0, err
    cases = json.loads((tmp_path / "ds" / "dataset.json").read_text())["cases"]
    assert len(cases) == 2
    for patient in PATIENTS:
        assert patient.patient_id not in out + err
    assert PATIENTS[0].patient_id in (tmp_path / "private" / "ids.csv").read_text()
    code, _, err = run_cli(
        monkeypatch,
        capsys,
        "prepare",
        str(export),
        str(tmp_path / "ds2"),
        "--id-map",
        str(tmp_path / "ds2" / "ids.csv"),
    )
    assert code == 2 and "id" in err.lower() and "Traceback" not in err
