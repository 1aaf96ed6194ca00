"""Batch translation: folders of NIfTI files, DICOM trees and dataset splits; failures skipped, reruns resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.inference import Translator
from medxlate.io import load_volume
from medxlate.training import fit
from tests.conftest import phantom, tiny_affine, tiny_config, write_nifti
from tests.dicom_factory import write_ct_series
from tests.inference.test_translator import _make_pairs
from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("batch")
    prepare_dataset(_make_pairs(root), root / "dataset")
    result = fit(validate_config(tiny_config(root / "dataset", root / "run", epochs=1, decay_epochs=0)))
    return result.checkpoint, root / "dataset"


def summary_rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((folder / "translation_summary.csv").open()))


def test_folder_with_a_bad_file_finishes_the_rest_and_a_rerun_resumes(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, _ = trained
    inputs = tmp_path / "in"
    inputs.mkdir()
    for number in (3, 4):
        write_nifti(phantom(number)[0], inputs / f"ct_{number}.nii.gz", tiny_affine())
    (inputs / "broken.nii.gz").write_bytes(b"not a nifti")
    (inputs / "notes.txt").write_text("ignored")
    args = ["translate", str(checkpoint), str(inputs), str(tmp_path / "out"), "--device", "cpu"]
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and "1 of 3 inputs failed" in err and "Traceback" not in err
    assert "2 translated, 0 skipped, 1 failed" in out
    rows = {Path(r["input"]).name: r for r in summary_rows(tmp_path / "out")}
    assert {name: r["status"] for name, r in rows.items()} == {
        "broken.nii.gz": "failed",
        "ct_3.nii.gz": "translated",
        "ct_4.nii.gz": "translated",
    }
    assert "cannot read NIfTI file" in rows["broken.nii.gz"]["message"]
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    for number in (3, 4):
        written = tmp_path / "out" / f"ct_{number}_synthetic_mr.nii.gz"
        assert rows[f"ct_{number}.nii.gz"]["output"] == str(written)
        expected = translator(load_volume(inputs / f"ct_{number}.nii.gz"))
        np.testing.assert_allclose(nib.load(str(written)).get_fdata(), expected[0].numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(nib.load(str(written)).affine, tiny_affine(), atol=1e-5)
        provenance = json.loads((tmp_path / "out" / f"ct_{number}_synthetic_mr.json").read_text())
        assert provenance["synthetic"] is True and len(provenance["source_sha256"]) == 64
    before = (tmp_path / "out" / "ct_3_synthetic_mr.nii.gz").stat().st_mtime_ns
    code, out, _ = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and "0 translated, 2 skipped, 1 failed" in out
    assert (tmp_path / "out" / "ct_3_synthetic_mr.nii.gz").stat().st_mtime_ns == before


def test_dicom_tree_translates_every_series_of_the_source_modality(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from medxlate.inference.batch import translate_batch

    checkpoint, _ = trained
    ct = phantom(5)[0].astype(float)
    write_ct_series(tmp_path / "tree" / "patient" / "ct_a", ct, spacing=(1.5, 1.25, 3.0), seed=1)
    write_ct_series(tmp_path / "tree" / "patient" / "ct_b", ct[::-1], spacing=(1.5, 1.25, 3.0), seed=2)
    write_ct_series(tmp_path / "tree" / "other" / "mr", ct + 1024, modality="MR", seed=3)
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    result = translate_batch(translator, tmp_path / "tree", tmp_path / "out", output_format="dicom")
    assert sorted(Path(r["input"]).name for r in result.rows) == ["ct_a", "ct_b"]
    assert {r["status"] for r in result.rows} == {"translated"}
    for row in result.rows:
        name = Path(row["output"]).name
        assert name.startswith("series_") and name.endswith("_synthetic_mr")  # opaque, no UID
        assert len(list(Path(row["output"]).glob("*.dcm"))) == ct.shape[2]


def test_dataset_split_and_nothing_to_translate(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, dataset = trained
    code, _, err = run_cli(
        monkeypatch, capsys, "translate", str(checkpoint), str(dataset), str(tmp_path / "out"), "--split", "val"
    )
    assert code == 0, err
    assert [r["input"] for r in summary_rows(tmp_path / "out")] == ["case_001"]
    assert (tmp_path / "out" / "case_001_synthetic_mr.nii.gz").is_file()
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("nothing here")
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(empty), str(tmp_path / "o2"))
    assert code == 2 and "nothing to translate" in err and "Traceback" not in err
