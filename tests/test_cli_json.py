"""``--json``: one JSON document on stdout and nothing else there; progress goes to stderr: a bar on a
terminal, plain lines (never bar redraws) elsewhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_cli import run_cli


def test_prepare_and_verify_json(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "ds"
    code, out, err = run_cli(monkeypatch, capsys, "prepare", str(paired_folder), str(dataset), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["written"] == ["case_000", "case_001", "case_002"]
    assert report["failed"] == [] and report["dataset"] == str(dataset / "dataset.json")
    code, out, _ = run_cli(monkeypatch, capsys, "verify", str(dataset), "--json")
    assert code == 0 and json.loads(out) == {"dataset": str(dataset), "ok": True, "problems": []}
    (dataset / "cases" / "case_001" / "target.nii.gz").unlink()
    code, out, err = run_cli(monkeypatch, capsys, "verify", str(dataset), "--json")
    result = json.loads(out)
    assert code == 2 and result["ok"] is False
    assert [(p["case"], p["role"], p["kind"]) for p in result["problems"]] == [("case_001", "target", "missing_file")]
    assert err.startswith("error: ") and "1 problem(s) found" in err


def test_translate_json_and_progress(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint, source = cli_checkpoint
    output = tmp_path / "syn.nii.gz"
    code, out, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(source), str(output), "--json")
    assert code == 0, err
    assert json.loads(out) == {"output": str(output), "provenance": str(tmp_path / "syn.json"), "input": str(source)}
    assert output.is_file() and (tmp_path / "syn.json").is_file()
    assert "\r" not in err and "%|" not in err  # stderr is not a terminal here: no bar redraws
    monkeypatch.setattr("medxlate.progress.on_terminal", lambda: True)
    code, out, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(source), str(output))
    assert code == 0 and out == f"synthetic volume: {output}\n" and "100%|" in err  # slice bar on a terminal


def test_evaluate_json_and_progress(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint, source = cli_checkpoint
    dataset = source.parents[2] / "dataset"
    args = ("evaluate", str(checkpoint), str(dataset), "--out-dir", str(tmp_path / "ev"), "--json")
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0, err
    result = json.loads(out)
    summary = json.loads((tmp_path / "ev" / "metrics_summary.json").read_text())
    assert result["split"] == "val" and list(result["per_case"]) == ["case_001"]
    assert result["mean"] == pytest.approx(summary["mean"], rel=1e-12)
    assert result["csv"] == str(tmp_path / "ev" / "metrics_per_case.csv")
    assert re.search(r"^evaluate val: 1/1 cases \(\d+\.\d s\)$", err, re.MULTILINE), err  # one line per case
    assert "\r" not in err and "%|" not in err
    monkeypatch.setattr("medxlate.progress.on_terminal", lambda: True)
    args = ("evaluate", str(checkpoint), str(dataset), "--out-dir", str(tmp_path / "ev2"), "--json")
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "evaluate val: 100%|" in err and "1/1" in err  # a bar on a terminal


def test_train_json(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import yaml

    from tests.conftest import tiny_config

    dataset = cli_checkpoint[1].parents[2] / "dataset"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(dataset, tmp_path / "run", epochs=1, decay_epochs=0)))
    code, out, err = run_cli(monkeypatch, capsys, "train", str(config), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["checkpoint"] == str(tmp_path / "run" / "last.pt") and (tmp_path / "run" / "last.pt").is_file()
    assert set(result) == {"checkpoint", "run_id", "metrics"} and "ssim_body" in result["metrics"]
    assert "\r" not in err and "%|" not in err and "epoch 1/1" not in err  # no step bar off a terminal


def test_scan_json_redacts_the_paths_of_an_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import phantom
    from tests.dicom_factory import write_ct_series

    patient = tmp_path / "export" / "DOE^JANE_PID-98765"  # a hospital export: one folder per patient
    write_ct_series(patient / "ct", phantom(1)[0].astype(float), patient_name="Doe^Jane", patient_id="PID-98765")
    (patient / "notes.txt").write_text("not dicom")
    code, out, err = run_cli(monkeypatch, capsys, "scan", str(tmp_path / "export"), "--json")
    assert code == 0, err
    assert "DOE" not in out.upper() and "PID-98765" not in out and "JANE" not in out.upper()
    data = json.loads(out)
    assert data["root"] == str(tmp_path / "export")
    assert set(data["series"][0]["files"]) == {"<redacted>"} and data["series"][0]["n_instances"] == 12
    assert [p["path"] for p in data["problems"]] == ["<redacted>"]
    code, out, _ = run_cli(monkeypatch, capsys, "scan", str(tmp_path / "export"), "--json", "--identifiers")
    data = json.loads(out)
    assert code == 0 and data["series"][0]["files"][0].startswith("DOE^JANE_PID-98765/ct/")
    assert [p["path"] for p in data["problems"]] == ["DOE^JANE_PID-98765/notes.txt"]
