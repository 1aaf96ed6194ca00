"""prepare trusts nothing a manifest says about paths: roles are names, files stay inside the folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medxlate.config.prepare import PrepareConfig, load_prepare_config
from medxlate.data.casestore import StoredCase, write_case
from medxlate.data.prepare import run_prepare
from medxlate.errors import InputDataError
from tests.conftest import phantom, tiny_affine, write_nifti


def _manifest(root: Path, files: dict[str, str]) -> Path:
    (root / "manifest.json").write_text(json.dumps({"cases": [{"id": "a", "split": "train", "files": files}]}))
    return root / "manifest.json"


def _write_case_files(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ct, mr, mask = phantom(0)
    write_nifti(ct, folder / "ct.nii.gz", tiny_affine())
    write_nifti(mr, folder / "mr.nii.gz", tiny_affine())
    write_nifti(mask, folder / "mask.nii.gz", tiny_affine())


def _files_below(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("role", ["../../../elsewhere/pwn_mask", "/ABS/pwn_mask", "a/mask", "Mask", "", "mask.x"])
def test_role_that_is_not_an_identifier_is_refused(tmp_path: Path, role: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    role = role.replace("/ABS", str(elsewhere))
    root = tmp_path / "pairs"
    _write_case_files(root)
    manifest = _manifest(root, {"source": "ct.nii.gz", "target": "mr.nii.gz", role: "mask.nii.gz"})
    with pytest.raises(InputDataError) as info:
        run_prepare(root, tmp_path / "ds")
    message = str(info.value)
    assert message.startswith(f"{manifest}: cases[0].files role is {role!r}; expected a lowercase identifier")
    assert list(elsewhere.iterdir()) == []  # before the fix: elsewhere/pwn_mask.nii.gz, exit 0
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_write_case_refuses_path_like_role_and_id(tmp_path: Path) -> None:
    """The check sits where names become paths, whoever calls the writer."""
    cases = tmp_path / "ds" / "cases"

    def writer(path: Path) -> None:
        path.write_bytes(b"x")

    with pytest.raises(InputDataError, match=r"role is '\.\./\.\./pwn'; expected a lowercase identifier"):
        write_case(cases, StoredCase("case_000", "f", "k", {}), {"source": writer, "../../pwn": writer})
    with pytest.raises(InputDataError, match=r"case id is '\.\./pwn'; expected letters, digits"):
        write_case(cases, StoredCase("../pwn", "f", "k", {}), {"source": writer})
    assert _files_below(tmp_path) == []


def _outside_setups(tmp_path: Path) -> dict[str, str]:
    """Manifest 'target' values that read tmp_path/outside/mr.nii.gz from the folder tmp_path/pairs."""
    _write_case_files(tmp_path / "outside")
    (tmp_path / "pairs" / "link").mkdir(parents=True)
    (tmp_path / "pairs" / "link" / "mr.nii.gz").symlink_to(tmp_path / "outside" / "mr.nii.gz")
    os.symlink(tmp_path / "outside", tmp_path / "pairs" / "dirlink")
    return {
        "dotdot": "../outside/mr.nii.gz",
        "absolute": str(tmp_path / "outside" / "mr.nii.gz"),
        "file symlink": "link/mr.nii.gz",
        "folder symlink": "dirlink/mr.nii.gz",
    }


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("dotdot", "climbs out of"),
        ("absolute", "an absolute path outside"),
        ("file symlink", "a symlink that leads outside"),
        ("folder symlink", "a symlink that leads outside"),
    ],
)
def test_paths_leaving_the_folder_are_refused(tmp_path: Path, kind: str, reason: str) -> None:
    target = _outside_setups(tmp_path)[kind]
    root = tmp_path / "pairs"
    _write_case_files(root / "a")
    manifest = _manifest(root, {"source": "a/ct.nii.gz", "target": target})
    with pytest.raises(InputDataError) as info:
        run_prepare(root, tmp_path / "ds")
    message = str(info.value)
    assert message.startswith(f"{manifest}: cases[0].files.target is {target!r}: {reason}")
    assert "allow_outside_paths" in message
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_outside_paths_opt_in_is_recorded(tmp_path: Path) -> None:
    target = _outside_setups(tmp_path)["dotdot"]
    root = tmp_path / "pairs"
    _write_case_files(root / "a")
    _manifest(root, {"source": "a/ct.nii.gz", "target": target, "mask": "a/mask.nii.gz"})
    cfg = load_prepare_config(None, {"allow_outside_paths": True})
    run_prepare(root, tmp_path / "ds", cfg)
    index = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert index["prepare"]["allow_outside_paths"] is True and index["prepare"]["outside_files"] == 1
    _, mr, _ = phantom(0)
    stored = nib.load(tmp_path / "ds" / "cases" / "case_000" / "target.nii.gz")
    np.testing.assert_allclose(np.asarray(stored.dataobj), mr)  # the outside file was read, as asked
    np.testing.assert_allclose(stored.affine, tiny_affine())
    _manifest(root, {"source": "a/ct.nii.gz", "target": "a/mr.nii.gz"})
    run_prepare(root, tmp_path / "ds3", PrepareConfig())  # inside paths, default settings: nothing recorded
    assert "allow_outside_paths" not in json.loads((tmp_path / "ds3" / "dataset.json").read_text())["prepare"]


def test_paths_inside_the_folder_pass(tmp_path: Path) -> None:
    from medxlate.io.names import outside_reason

    root = tmp_path / "pairs"
    _write_case_files(root / "a")
    (root / "b").mkdir()
    (root / "b" / "mr.nii.gz").symlink_to(root / "a" / "mr.nii.gz")  # a link that stays in the tree
    assert outside_reason(Path("a/../a/ct.nii.gz"), root) is None
    assert outside_reason(Path("b/mr.nii.gz"), root) is None
    assert outside_reason(root / "a" / "ct.nii.gz", root) is None  # absolute, but inside
    assert outside_reason(Path("a/../../pairs/a/ct.nii.gz"), root) is None  # back into the tree
    assert outside_reason(Path("a/../../x"), root) == f"climbs out of {root} with '..'"
    _manifest(root, {"source": "a/../a/ct.nii.gz", "target": "b/mr.nii.gz"})
    assert run_prepare(root, tmp_path / "ds").written == ("case_000",)


def test_dataset_case_ids_are_names(paired_folder: Path, tmp_path: Path) -> None:
    """Case ids of a dataset.json name output files downstream (batch translation): never a path."""
    from medxlate.data import read_dataset

    run_prepare(paired_folder, tmp_path / "ds")
    index_path = tmp_path / "ds" / "dataset.json"
    index = json.loads(index_path.read_text())
    index["cases"][1]["id"] = "../../pwn"
    index_path.write_text(json.dumps(index))
    with pytest.raises(InputDataError, match=r"cases\[1\]: id is '\.\./\.\./pwn', expected letters, digits"):
        read_dataset(tmp_path / "ds")


@pytest.mark.parametrize("where", ["dotdot", "absolute"])
def test_a_header_whose_data_file_leaves_the_folder_is_refused(tmp_path: Path, where: str) -> None:
    """A detached MetaImage header inside the folder may name its pixel data anywhere: that file is read too."""
    import SimpleITK as sitk

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = tmp_path / "pairs"
    _write_case_files(root / "a")
    mr = sitk.ReadImage(str(root / "a" / "mr.nii.gz"))
    sitk.WriteImage(mr, str(outside / "mr.mhd"))  # mr.mhd + mr.raw, same grid
    data = "../../elsewhere/mr.raw" if where == "dotdot" else str(outside / "mr.raw")
    header = (outside / "mr.mhd").read_text().replace("ElementDataFile = mr.raw", f"ElementDataFile = {data}")
    (root / "a" / "mr.mhd").write_text(header)
    assert sitk.ReadImage(str(root / "a" / "mr.mhd")).GetSize() == mr.GetSize()  # SimpleITK follows it
    manifest = _manifest(root, {"source": "a/ct.nii.gz", "target": "a/mr.mhd"})
    with pytest.raises(InputDataError) as info:
        run_prepare(root, tmp_path / "ds")
    message = str(info.value)
    assert message.startswith(f"{manifest}: cases[0].files.target is 'a/mr.mhd': a header whose data file")
    assert "allow_outside_paths" in message
    assert not (tmp_path / "ds" / "dataset.json").exists()
    (root / "a" / "mr.raw").write_bytes((outside / "mr.raw").read_bytes())
    (root / "a" / "mr.mhd").write_text(header.replace(f"ElementDataFile = {data}", "ElementDataFile = mr.raw"))
    run_prepare(root, tmp_path / "ds2")  # the same header naming its data beside it is read
    assert (tmp_path / "ds2" / "dataset.json").exists()
