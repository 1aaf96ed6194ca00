"""prepare on case folders of role-named volumes (SynthRAD2023/2025 layout), and the manifest hint."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medxlate.config.prepare import load_prepare_config
from medxlate.data import read_dataset
from medxlate.data.prepare import run_prepare
from medxlate.errors import InputDataError
from tests.conftest import phantom, tiny_affine, write_nifti

SPACING = (1.5, 1.25, 3.0)
ORIGIN_LPS = (-40.0, 25.0, 60.0)
DIRECTION = np.diag([1.0, -1.0, 1.0])  # y flipped: not the identity
SECRETS = ("Zyxwab", "Quorvin", "1ABA005", "1HNA001")  # folder names that must not reach the dataset


def _write_mha(array: np.ndarray, path: Path, origin: tuple[float, float, float] = ORIGIN_LPS) -> None:
    """Write (X, Y, Z) ``array`` with SimpleITK (LPS geometry), independent of medxlate's readers."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing(SPACING)
    image.SetOrigin(origin)
    image.SetDirection(DIRECTION.flatten().tolist())
    sitk.WriteImage(image, str(path))


def _ras_affine() -> np.ndarray:
    """The RAS affine of the images _write_mha writes, built by hand (RAS = diag(-1, -1, 1) @ LPS)."""
    flip = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = flip @ DIRECTION @ np.diag(SPACING)
    affine[:3, 3] = flip @ np.array(ORIGIN_LPS)
    return affine


def _given_mask(seed: int) -> np.ndarray:
    """A body mask that differs from any CT threshold: the body, first 8 slices only."""
    mask = phantom(seed)[2].copy()
    mask[:, :, 8:] = 0
    return mask


def _synthrad2025(root: Path, folders: dict[str, int]) -> Path:
    """``Task1/<region>/<case>/{ct,mr,mask}.mha`` plus the overview folder SynthRAD ships."""
    for rel, seed in folders.items():
        folder = root / "Task1" / rel
        folder.mkdir(parents=True)
        ct, mr, _ = phantom(seed)
        _write_mha(ct, folder / "ct.mha")
        _write_mha(mr, folder / "mr.mha")
        _write_mha(_given_mask(seed), folder / "mask.mha")
    (root / "Task1" / "overview").mkdir()
    (root / "Task1" / "overview" / "Task1_AB_train.csv").write_text("ID,Sex\n1ABA005,F\n")
    return root


def _all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_synthrad2025_mha_layout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _synthrad2025(tmp_path / "in", {"AB/1ABA005": 0, "HN/1HNA001": 1, "TH/Zyxwab_Quorvin": 2})
    with caplog.at_level(logging.INFO):
        report = run_prepare(root, tmp_path / "ds", id_map=tmp_path / "private" / "ids.csv")
    dataset = read_dataset(tmp_path / "ds")
    assert [c.id for c in dataset.cases] == ["case_000", "case_001", "case_002"] and not report.failed
    index = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert (index["source_modality"], index["target_modality"], index["prepare"]["input"]) == ("CT", "MR", "folders")
    with open(tmp_path / "private" / "ids.csv", newline="") as handle:
        by_folder = {row["folder"]: row["case_id"] for row in csv.DictReader(handle)}  # only the id map links them
    assert sorted(by_folder) == ["Task1/AB/1ABA005", "Task1/HN/1HNA001", "Task1/TH/Zyxwab_Quorvin"]
    for folder, seed in {"AB/1ABA005": 0, "HN/1HNA001": 1, "TH/Zyxwab_Quorvin": 2}.items():
        case = tmp_path / "ds" / "cases" / by_folder[f"Task1/{folder}"]
        ct, mr, _ = phantom(seed)
        source, target, mask = (nib.load(case / f"{role}.nii.gz") for role in ("source", "target", "mask"))
        for image in (source, target, mask):
            np.testing.assert_allclose(image.affine, _ras_affine(), atol=1e-6)
        np.testing.assert_array_equal(np.asarray(source.dataobj), np.maximum(ct, -1024))
        np.testing.assert_allclose(np.asarray(target.dataobj), mr)
        np.testing.assert_array_equal(np.asarray(mask.dataobj), _given_mask(seed))  # the folder's mask is the body mask
    written = _all_bytes(tmp_path / "ds") + caplog.text.encode()
    assert not [s for s in SECRETS if s.encode() in written]


def test_case_ids_follow_content_not_folder_names(tmp_path: Path) -> None:
    _synthrad2025(tmp_path / "a", {"AB/1ABA005": 0, "HN/1HNA001": 1})
    _synthrad2025(tmp_path / "b", {"AB/Zyxwab_Quorvin": 1, "HN/0000": 0})  # same volumes, other names and order
    run_prepare(tmp_path / "a" / "Task1", tmp_path / "out_a" / "ds")  # the region level may be given too
    run_prepare(tmp_path / "b", tmp_path / "out_b" / "ds")
    assert _all_bytes(tmp_path / "out_a" / "ds") == _all_bytes(tmp_path / "out_b" / "ds")


def test_synthrad2023_cbct_nifti_needs_the_target_modality(tmp_path: Path) -> None:
    root = tmp_path / "Task2"
    for name, seed in {"brain/2BA001": 0, "pelvis/2PA001": 1}.items():
        (root / name).mkdir(parents=True)
        ct, mr, mask = phantom(seed)
        for file, array in {"ct": ct, "cbct": mr, "mask": mask}.items():
            write_nifti(array, root / name / f"{file}.nii.gz", tiny_affine())
    with pytest.raises(InputDataError) as info:
        run_prepare(root, tmp_path / "ds")
    assert "no source/target pair found (2 patient(s) unpaired)" in str(info.value)
    assert (
        "folder #0: found cbct.nii.gz, ct.nii.gz, mask.nii.gz: no MR image for the target "
        "(set pairing.target.modality to CBCT to use it)"
    ) in str(info.value)
    assert "2BA001" not in str(info.value)
    run_prepare(root, tmp_path / "ds", load_prepare_config(None, {"pairing.target.modality": "CBCT"}))
    dataset = read_dataset(tmp_path / "ds")
    assert (dataset.source_modality, dataset.target_modality, len(dataset.cases)) == ("CT", "CBCT", 2)


def test_plain_folder_per_case_with_role_names(tmp_path: Path) -> None:
    root = tmp_path / "export"
    for name, seed in {"c1": 0, "c2": 1, "only_ct": 2}.items():
        (root / name).mkdir(parents=True)
        ct, mr, _ = phantom(seed)
        write_nifti(ct, root / name / "source.nii.gz", tiny_affine())
        if name != "only_ct":
            write_nifti(mr, root / name / "target.nii.gz", tiny_affine())
        write_nifti(mr, root / name / "notes_of_dr_who.nii.gz", tiny_affine())  # another name: ignored
    report = run_prepare(root, tmp_path / "ds", id_map=tmp_path / "ids.csv")
    assert report.written == ("case_000", "case_001")
    assert report.unpaired == ("folder #2: found source.nii.gz (and 1 other volume(s)): no MR image for the target",)
    source = nib.load(tmp_path / "ds" / "cases" / "case_000" / "source.nii.gz")
    np.testing.assert_allclose(source.affine, tiny_affine())
    mask = np.asarray(nib.load(tmp_path / "ds" / "cases" / "case_000" / "mask.nii.gz").dataobj)
    assert 0 < mask.sum() < mask.size  # computed from the CT: no mask file in the folder
    with open(tmp_path / "ids.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["status"], r["patient"], r["folder"]) for r in rows][2] == ("unpaired", "folder #2", "only_ct")


def test_failure_messages_name_the_case_by_label_and_file(tmp_path: Path) -> None:
    root = _synthrad2025(tmp_path / "in", {"AB/Zyxwab_Quorvin": 0})
    _write_mha(phantom(0)[1], root / "Task1" / "AB" / "Zyxwab_Quorvin" / "mr.mha", origin=(0.0, 0.0, 0.0))
    with pytest.raises(InputDataError) as info:
        run_prepare(root, tmp_path / "ds")
    assert "case_000 (folder #0): folder #0 mr.mha: target affine differs from the source's" in str(info.value)
    assert "Zyxwab" not in str(info.value)


def test_symlink_out_of_a_case_folder_is_refused(tmp_path: Path) -> None:
    root = _synthrad2025(tmp_path / "in", {"AB/1ABA005": 0})
    _write_mha(phantom(1)[1], tmp_path / "elsewhere.mha")
    (root / "Task1" / "AB" / "1ABA005" / "mr.mha").unlink()
    (root / "Task1" / "AB" / "1ABA005" / "mr.mha").symlink_to(tmp_path / "elsewhere.mha")
    with pytest.raises(
        InputDataError,
        match=r"case folder file is 'Task1/AB/1ABA005/mr.mha': a symlink that leads outside .*allow_outside_paths",
    ):
        run_prepare(root, tmp_path / "ds")
    run_prepare(root, tmp_path / "ds", load_prepare_config(None, {"allow_outside_paths": True}))
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["prepare"]["outside_files"] == 1


def test_volumes_under_other_names_show_the_manifest_they_need(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    (root / "p1").mkdir(parents=True)
    ct, mr, _ = phantom(0)
    write_nifti(ct, root / "p1" / "planning.nii.gz", tiny_affine())
    write_nifti(mr, root / "p1" / "t1w.nii.gz", tiny_affine())
    (root / "readme.txt").write_text("not an image")
    with pytest.raises(InputDataError) as info:
        run_prepare(root, tmp_path / "ds")
    message = str(info.value)
    assert message.startswith(f"{root}: holds 2 volume file(s) (.nii.gz) but no DICOM series and no manifest.json")
    example = json.loads(message.split("e.g. ", 1)[1].split("; or one folder", 1)[0])
    assert example["cases"][0]["files"] == {"source": "p1/planning.nii.gz", "target": "p1/t1w.nii.gz"}
    (root / "manifest.json").write_text(json.dumps(example))  # the example is a working manifest
    assert run_prepare(root, tmp_path / "ds").written == ("case_000",)
