"""verify_dataset: every kind of problem found in one call; a good dataset has none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medxlate.data.prepare import run_prepare
from medxlate.data.verify import verify_dataset
from tests.conftest import phantom, tiny_affine, write_nifti


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Seven tiny cases, so that each can carry a different problem."""
    root = tmp_path / "pairs"
    cases = []
    for number in range(7):
        folder = root / f"p{number}"
        folder.mkdir(parents=True)
        ct, mr, _ = phantom(number)
        write_nifti(ct, folder / "ct.nii.gz", tiny_affine())
        write_nifti(mr, folder / "mr.nii.gz", tiny_affine())
        files = {"source": f"p{number}/ct.nii.gz", "target": f"p{number}/mr.nii.gz"}
        cases.append({"id": f"p{number}", "split": "train", "files": files})
    (root / "manifest.json").write_text(json.dumps({"cases": cases}))
    run_prepare(root, tmp_path / "ds")
    return tmp_path / "ds"


def _rewrite(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    write_nifti(array, path, tiny_affine() if affine is None else affine)


def test_good_dataset_has_no_problem(dataset: Path) -> None:
    assert verify_dataset(dataset) == []


def test_every_problem_in_one_call(dataset: Path) -> None:
    cases = dataset / "cases"
    ct, mr, _ = phantom(0)
    (cases / "case_000" / "target.nii.gz").unlink()  # missing
    shifted = tiny_affine()
    shifted[:3, 3] += 2.0
    _rewrite(cases / "case_001" / "target.nii.gz", mr, shifted)  # geometry
    _rewrite(cases / "case_002" / "mask.nii.gz", np.zeros(ct.shape, np.uint8))  # empty mask
    broken = mr.copy()
    broken[3, 4, 5] = np.nan
    _rewrite(cases / "case_003" / "target.nii.gz", broken)  # NaN
    _rewrite(cases / "case_004" / "source.nii.gz", (ct.astype(np.float32) + 1024.0) * 4.0)  # not HU
    _rewrite(cases / "case_005" / "target.nii.gz", mr - 500.0)  # negative MR
    (cases / "case_006" / "source.nii.gz").write_bytes(b"not a nifti")  # unreadable
    problems = verify_dataset(dataset)
    found = {(p.case, p.role, p.kind) for p in problems}
    assert found == {
        ("case_000", "target", "missing_file"),
        ("case_001", "target", "geometry"),
        ("case_002", "mask", "empty_mask"),
        ("case_003", "target", "non_finite"),
        ("case_004", "source", "intensity"),
        ("case_005", "target", "intensity"),
        ("case_006", "source", "unreadable"),
    }
    messages = {p.case: str(p) for p in problems}
    assert "affine differs from the source's by up to 2 mm" in messages["case_001"]
    assert "no air" in " ".join(str(p) for p in problems if p.case == "case_004")
    assert "negative voxels" in messages["case_005"]


def test_a_label_map_with_several_ids_is_no_problem(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    (root / "a").mkdir(parents=True)
    ct, mr, _ = phantom(0)
    labels = np.where(ct < -500, 1, 0) + np.where(ct > 300, 2, 0)  # ids 0, 1, 2 (a mask would be 0/1)
    for name, array in (("ct", ct), ("mr", mr), ("labels", labels.astype(np.uint8))):
        write_nifti(array, root / "a" / f"{name}.nii.gz", tiny_affine())
    files = {"source": "a/ct.nii.gz", "target": "a/mr.nii.gz", "labels": "a/labels.nii.gz"}
    (root / "manifest.json").write_text(json.dumps({"cases": [{"id": "a", "split": "train", "files": files}]}))
    run_prepare(root, tmp_path / "ds")
    assert verify_dataset(tmp_path / "ds") == []
    _rewrite(tmp_path / "ds" / "cases" / "case_000" / "labels.nii.gz", labels.astype(np.float32) - 0.5)
    assert [(p.role, p.kind) for p in verify_dataset(tmp_path / "ds")] == [("labels", "label_values")]


def test_constant_mr_and_index_problems(dataset: Path) -> None:
    _, mr, _ = phantom(0)
    _rewrite(dataset / "cases" / "case_000" / "target.nii.gz", np.full(mr.shape, 7.0, np.float32))
    index = json.loads((dataset / "dataset.json").read_text())
    index["cases"][1]["split"] = "holdout"
    index["cases"][2]["id"] = "case_000"
    (dataset / "dataset.json").write_text(json.dumps(index))
    kinds = [(p.case, p.kind) for p in verify_dataset(dataset)]
    assert ("case_001", "index") in kinds and ("case_000", "index") in kinds
    assert ("case_000", "intensity") in kinds
    assert "constant image" in " ".join(str(p) for p in verify_dataset(dataset))


def test_interrupted_prepare_is_reported_as_stale(dataset: Path) -> None:
    case_file = dataset / "cases" / "case_000" / "case.json"
    content = json.loads(case_file.read_text())
    content["fingerprint"] = "0" * 64
    case_file.write_text(json.dumps(content))
    assert [(p.case, p.kind) for p in verify_dataset(dataset)] == [("case_000", "stale")]


def test_missing_index(tmp_path: Path) -> None:
    (problem,) = verify_dataset(tmp_path)
    assert problem.kind == "index" and "dataset.json not found" in problem.message
