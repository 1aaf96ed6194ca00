"""``medxlate export`` and ``medxlate translate PACKAGE``, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.test_cli import run_cli
from tests.test_cli_errors import assert_one_error_line


def test_export_then_translate_with_the_package(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint, ct = cli_checkpoint
    package = tmp_path / "pkg"
    code, out, _ = run_cli(monkeypatch, capsys, "export", str(checkpoint), str(package), "--license", "MIT", "--json")
    assert code == 0 and json.loads(out)["files"] == ["MODEL_CARD.md", "SHA256SUMS", "model.json", "model.pt"]
    for model, output in ((package, "from_package.nii.gz"), (checkpoint, "from_checkpoint.nii.gz")):
        code, out, err = run_cli(monkeypatch, capsys, "translate", str(model), str(ct), str(tmp_path / output))
        assert code == 0, err
    from_package = nib.load(tmp_path / "from_package.nii.gz")
    from_checkpoint = nib.load(tmp_path / "from_checkpoint.nii.gz")
    np.testing.assert_array_equal(from_package.get_fdata(), from_checkpoint.get_fdata())
    np.testing.assert_array_equal(from_package.affine, from_checkpoint.affine)
    sidecar = json.loads((tmp_path / "from_package.json").read_text())
    assert sidecar["package"] == str(package.resolve()) and sidecar["license"] == "MIT"

    code, _, err = run_cli(monkeypatch, capsys, "export", str(checkpoint), str(package))
    assert code == 2
    assert_one_error_line(err, "pkg: folder exists and is not empty; choose a new folder or pass --overwrite")
    weights = package / "model.pt"
    weights.write_bytes(weights.read_bytes()[:-10])
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(package), str(ct), str(tmp_path / "x.nii.gz"))
    assert code == 2 and not (tmp_path / "x.nii.gz").exists()
    assert_one_error_line(err, f"{weights}: content differs from the package manifest")
    code, _, _ = run_cli(monkeypatch, capsys, "export", str(checkpoint), str(package), "--overwrite")
    assert code == 0
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(package), str(ct), str(tmp_path / "x.nii.gz"))
    assert code == 0, err


def test_export_refuses_an_unknown_format(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint, _ = cli_checkpoint
    code, _, err = run_cli(monkeypatch, capsys, "export", str(checkpoint), str(tmp_path / "p"), "--format", "zip")
    assert code == 2 and not (tmp_path / "p").exists()
    assert_one_error_line(err, "--format must be 'medxlate' (a model package), got 'zip'")
