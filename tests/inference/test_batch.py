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
from medxlate.io.provenance import HASH_FILES_METHOD, hash_files
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


def nifti_folder(tmp_path: Path, seeds: dict[str, int]) -> tuple[Path, Path]:
    """``tmp_path/in`` holding a phantom CT per file name (NIfTI) and the output folder ``tmp_path/out``."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, seed in seeds.items():
        write_nifti(phantom(seed)[0], inputs / name, tiny_affine())
    return inputs, tmp_path / "out"


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
    assert "cannot read NIfTI file <redacted>/broken.nii.gz" in rows["broken.nii.gz"]["message"]
    assert str(inputs) not in (tmp_path / "out" / "translation_summary.csv").read_text()  # the input folder's path
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


def test_dicom_tree_translates_every_series_of_the_source_modality(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medxlate.inference.batch import translate_batch

    checkpoint, _ = trained
    ct = phantom(5)[0].astype(float)
    patient = tmp_path / "tree" / "DOE^JANE_PID-98765"  # hospital exports name folders after patients
    write_ct_series(patient / "ct_a", ct, spacing=(1.5, 1.25, 3.0), seed=1, series_description="Thorax A")
    write_ct_series(patient / "ct_b", ct[::-1], spacing=(1.5, 1.25, 3.0), seed=2, series_description="Thorax B")
    write_ct_series(tmp_path / "tree" / "other" / "mr", ct + 1024, modality="MR", seed=3)
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    result = translate_batch(translator, tmp_path / "tree", tmp_path / "out", output_format="dicom")
    assert sorted(r["input"] for r in result.rows) == [
        "CT series 'Thorax A' (12 images)",
        "CT series 'Thorax B' (12 images)",
    ]
    assert {r["status"] for r in result.rows} == {"translated"}
    for row in result.rows:
        name = Path(row["output"]).name
        assert name.startswith("series_") and name.endswith("_synthetic_mr")  # opaque, no UID
        assert len(list(Path(row["output"]).glob("*.dcm"))) == ct.shape[2]
    # each sidecar identifies its series by content (what a rerun compares)
    sidecars = [json.loads(Path(row["output"]).with_suffix(".json").read_text()) for row in result.rows]
    assert {p["source"]["sha256_method"] for p in sidecars} == {HASH_FILES_METHOD}
    series_hashes = {hash_files(list((patient / s).iterdir())) for s in ("ct_a", "ct_b")}
    assert {p["source_sha256"] for p in sidecars} == series_hashes
    summary = (tmp_path / "out" / "translation_summary.csv").read_text()
    for secret in ("DOE", "JANE", "PID-98765", str(tmp_path / "tree")):
        assert secret not in summary
    # asked for: the series folders, in the summary and in --json
    args = ["translate", str(checkpoint), str(tmp_path / "tree"), str(tmp_path / "out"), "--format", "dicom"]
    code, out, err = run_cli(monkeypatch, capsys, *args, "--json", "--identifiers")
    assert code == 0, err
    assert sorted(r["input"] for r in json.loads(out)["outputs"]) == [str(patient / "ct_a"), str(patient / "ct_b")]
    assert {r["status"] for r in summary_rows(tmp_path / "out")} == {"skipped"}  # same inputs: nothing redone
    assert sorted(r["input"] for r in summary_rows(tmp_path / "out")) == [str(patient / "ct_a"), str(patient / "ct_b")]


def test_inputs_sharing_a_name_get_their_own_output_and_a_rerun_checks_the_input(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import SimpleITK as sitk

    checkpoint, _ = trained
    inputs, out = nifti_folder(tmp_path, {"case.nii.gz": 3, "case.nii": 4})
    sitk.WriteImage(sitk.GetImageFromArray(phantom(6)[0].T.copy()), str(inputs / "case.nrrd"))
    args = ["translate", str(checkpoint), str(inputs), str(out), "--device", "cpu"]
    code, stdout, err = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "3 translated, 0 skipped, 0 failed" in stdout, err
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    names = {"case.nii.gz": "case_nii_gz", "case.nii": "case_nii", "case.nrrd": "case_nrrd"}
    assert {r["input"]: Path(r["output"]).name for r in summary_rows(out)} == {
        source: f"{name}_synthetic_mr.nii.gz" for source, name in names.items()
    }
    for source, name in names.items():
        expected = translator(load_volume(inputs / source))[0].numpy()
        np.testing.assert_allclose(nib.load(out / f"{name}_synthetic_mr.nii.gz").get_fdata(), expected, atol=1e-4)
    code, stdout, _ = run_cli(monkeypatch, capsys, *args)
    assert code == 0 and "0 translated, 3 skipped, 0 failed" in stdout
    # another volume under a name already used: its output is neither skipped nor replaced
    before = (out / "case_nii_synthetic_mr.nii.gz").read_bytes()
    write_nifti(phantom(7)[0], inputs / "case.nii", tiny_affine())
    code, stdout, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and "0 translated, 2 skipped, 1 failed" in stdout
    assert "case_nii_synthetic_mr.nii.gz exists and was made from another input" in err
    assert (out / "case_nii_synthetic_mr.nii.gz").read_bytes() == before
    # an output whose sidecar records no checksum (an older medxlate) is not claimed as another input's
    sidecar = out / "case_nrrd_synthetic_mr.json"
    record = json.loads(sidecar.read_text())
    del record["source_sha256"]
    sidecar.write_text(json.dumps(record))
    code, stdout, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and "0 translated, 1 skipped, 2 failed" in stdout
    assert "case_nrrd_synthetic_mr.nii.gz exists but case_nrrd_synthetic_mr.json records no source_sha256" in err


def test_output_names_are_unique_and_stable() -> None:
    from medxlate.inference.batch import volume_names

    paths = [Path(n) for n in ("a.nii.gz", "b.nii", "B.nrrd", "c.nii", "c.nrrd", "c_nii.mha", "x.y.mha")]
    names = volume_names(paths)
    assert names[:2] == ["a", "b_nii"] and names[2] == "B_nrrd" and names[4] == "c_nrrd" and names[6] == "x.y"
    assert names[3].startswith("c_nii_") and names[5].startswith("c_nii_") and names[3] != names[5]
    assert len({n.casefold() for n in names}) == len(names)  # also on case-insensitive file systems
    assert volume_names(list(reversed(paths))) == list(reversed(names))


def test_a_rerun_removes_what_a_killed_write_left(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, _ = trained
    inputs, out = nifti_folder(tmp_path, {"ct_3.nii.gz": 3})
    out.mkdir()
    # what SIGKILL during save_volume / save_dicom_series leaves (names made by medxlate.io.atomic)
    (out / ".ct_3_synthetic_mr.nii.gz.0123456789abcdef.tmp.nii.gz").write_bytes(b"partial")
    (out / ".series_0_synthetic_mr.fedcba9876543210.tmp").mkdir()
    (out / ".series_0_synthetic_mr.fedcba9876543210.tmp" / "slice_0001.dcm").write_bytes(b"partial")
    (out / ".keep.tmp").write_text("not ours")
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(inputs), str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        ".keep.tmp",
        "ct_3_synthetic_mr.json",
        "ct_3_synthetic_mr.nii.gz",
        "translation_summary.csv",
    ]


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
