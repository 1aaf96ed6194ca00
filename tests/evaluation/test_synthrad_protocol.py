"""`medxlate evaluate --protocol synthrad2025`: per-case CSV and summary equal the challenge definition."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.inference import Translator
from medxlate.io import load_volume
from medxlate.training import fit
from tests.conftest import tiny_config
from tests.metrics.synthrad_reference import score_patient
from tests.test_cli import run_cli


def _checkpoint(pairs: Path, root: Path) -> tuple[Path, Path]:
    prepare_dataset(pairs, root / "dataset")
    result = fit(validate_config(tiny_config(root / "dataset", root / "run", epochs=1, decay_epochs=0)))
    return result.checkpoint, root / "dataset"


@pytest.fixture
def ct_target_pairs(paired_folder: Path) -> Path:
    """The paired folder with the CT as target too (a CT -> CT model): its outputs are HU."""
    manifest = json.loads((paired_folder / "manifest.json").read_text())
    for case in manifest["cases"]:
        case["files"]["target"] = case["files"]["source"]
    (paired_folder / "manifest.json").write_text(json.dumps(manifest))
    return paired_folder


def test_synthrad_protocol_from_the_cli(
    ct_target_pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, dataset = _checkpoint(ct_target_pairs, tmp_path)
    out = tmp_path / "eval"
    code, stdout, err = run_cli(
        monkeypatch,
        capsys,
        "evaluate",
        str(checkpoint),
        str(dataset),
        "--out-dir",
        str(out),
        "--protocol",
        "synthrad2025",
    )
    assert code == 0, err
    rows = list(csv.DictReader((out / "metrics_per_case.csv").open()))
    assert [r["case"] for r in rows] == ["case_002"]
    case = dataset / "cases" / "case_002"
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    prediction = translator(load_volume(case / "source.nii.gz"), fill_background=False)  # what evaluate scores
    expected = score_patient(
        load_volume(case / "target.nii.gz")[0].numpy(),
        prediction[0].numpy(),
        load_volume(case / "mask.nii.gz")[0].numpy(),
    )
    for name in ("mae", "psnr", "ms_ssim"):
        np.testing.assert_allclose(float(rows[0][name]), expected[name], rtol=1e-5)  # CSV keeps 6 digits
    summary = json.loads((out / "metrics_summary.json").read_text())
    assert summary["protocol"] == "synthrad2025" and summary["cases"] == 1
    np.testing.assert_allclose(summary["mean"]["mae"], expected["mae"], rtol=1e-9)
    assert summary["std"] == {"mae": 0.0, "psnr": 0.0, "ms_ssim": 0.0}
    assert f"mae={expected['mae']:.4g}" in stdout


def test_synthrad_protocol_refuses_an_mr_reference(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, dataset = _checkpoint(paired_folder, tmp_path)  # CT -> MR
    args = ["evaluate", str(checkpoint), str(dataset), "--out-dir", str(tmp_path / "eval")]
    code, _, err = run_cli(monkeypatch, capsys, *args, "--protocol", "synthrad2025")
    assert code == 2 and "Traceback" not in err
    assert "cases/case_002/target.nii.gz: synthrad2025: target does not look like a CT in HU" in err
    assert not (tmp_path / "eval" / "metrics_per_case.csv").exists()
    code, _, err = run_cli(monkeypatch, capsys, *args, "--protocol", "synthrad")
    assert code == 2 and "unknown protocol 'synthrad'; available: default, synthrad2025" in err
