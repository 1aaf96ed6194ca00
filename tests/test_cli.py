"""CLI: bad input gives one 'error:' line (no traceback) and exit code 2; the pipeline runs end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from medxlate.cli import main
from tests.conftest import tiny_config


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
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
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    source = nib.load(str(paired_folder / "patient_2" / "ct.nii.gz"))
    np.testing.assert_allclose(nib.load(str(translated)).affine, source.affine, atol=1e-5)
    header = (tmp_path / "out" / "evaluation" / "metrics_per_case.csv").read_text().splitlines()[0]
    assert header.startswith("case,ssim,psnr,mae,ssim_body,psnr_body,mae_body,data_range")
