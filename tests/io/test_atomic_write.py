"""Atomic writing of images and provenance sidecars: all or nothing, no temporary file left behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from torch.testing import assert_close

from medxlate.errors import InputDataError
from medxlate.io import load_volume, save_volume, write_provenance
from medxlate.io.atomic import atomic_dir, clean_stale_temporaries, write_bytes_atomic
from medxlate.io.save import sidecar_path


def _image(value: float = 1.0) -> MetaTensor:
    return MetaTensor(torch.full((1, 4, 5, 6), value), affine=torch.diag(torch.tensor([-1.0, 2.0, 3.0, 1.0])))


def _failing_save(image: nib.Nifti1Image, filename: Path) -> None:
    """Start writing like nibabel would, then fail half-way (disk full)."""
    Path(filename).write_bytes(b"partial")
    raise OSError(28, "No space left on device")


def test_failed_image_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nib, "save", _failing_save)
    target = tmp_path / "new" / "out.nii.gz"
    with pytest.raises(OSError, match="No space left"):
        save_volume(_image(), target)
    assert list(target.parent.iterdir()) == []  # neither the image nor a temporary file


def test_failed_overwrite_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = save_volume(_image(1.0), tmp_path / "out.nii.gz")
    before = target.read_bytes()
    monkeypatch.setattr(nib, "save", _failing_save)
    with pytest.raises(OSError, match="No space left"):
        save_volume(_image(2.0), target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]
    assert target.read_bytes() == before


def test_interrupt_is_cleaned_up_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(image: nib.Nifti1Image, filename: Path) -> None:
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(nib, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_volume(_image(), tmp_path / "out.nii")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_content(tmp_path: Path) -> None:
    target = save_volume(_image(1.0), tmp_path / "out.nii.gz")
    save_volume(_image(2.0), target)
    assert_close(load_volume(target).as_tensor(), _image(2.0).as_tensor())
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


@pytest.mark.parametrize(
    ("image", "sidecar"), [("out.nii.gz", "out.json"), ("out.nii", "out.json"), ("a.b.nii.gz", "a.b.json")]
)
def test_sidecar_path(tmp_path: Path, image: str, sidecar: str) -> None:
    assert sidecar_path(tmp_path / image) == tmp_path / sidecar


def test_write_provenance(tmp_path: Path) -> None:
    info = {
        "synthetic": True,
        "model_run": "runs:/abc/model",
        "input_sha256": "0" * 64,
        "spacing": np.array([0.7, 0.9, 2.5]),
        "epochs": np.int64(3),
        "checkpoint": tmp_path / "ckpt.pt",
        "psnr": torch.tensor(31.5),
    }
    written = write_provenance(tmp_path / "sub" / "out.nii.gz", info)
    assert written == tmp_path / "sub" / "out.json"
    loaded = json.loads(written.read_text())
    assert loaded == {
        "synthetic": True,
        "model_run": "runs:/abc/model",
        "input_sha256": "0" * 64,
        "spacing": [0.7, 0.9, 2.5],
        "epochs": 3,
        "checkpoint": str(tmp_path / "ckpt.pt"),
        "psnr": 31.5,
    }
    assert [p.name for p in written.parent.iterdir()] == ["out.json"]


@pytest.mark.parametrize(
    ("info", "match"),
    [
        ({"metrics": {"ssim": float("nan")}}, "not JSON-serialisable"),
        ({"model": object()}, "not JSON-serialisable"),
        ({"source": {"PatientID": "x"}}, r"identifier keys \['source.PatientID'\]"),
        ({"series_instance_uid": "1.2.3"}, "identifier keys"),
    ],
)
def test_bad_provenance_is_refused_and_nothing_written(tmp_path: Path, info: dict, match: str) -> None:
    with pytest.raises(InputDataError, match=match) as error:
        write_provenance(tmp_path / "out.nii.gz", info)
    assert str(tmp_path / "out.json") in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_provenance_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_write_bytes(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[:3])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", failing_write_bytes)
    with pytest.raises(OSError, match="No space left"):
        write_provenance(tmp_path / "out.nii.gz", {"synthetic": True})
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder in which nothing can be created, as for a non-root user (tests may run as root)."""
    import builtins
    import errno
    import io
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    real_open, real_mkdir = builtins.open, os.mkdir

    def refuse(path: object) -> None:
        if isinstance(path, (str, os.PathLike)) and Path(os.fspath(path)).parent == folder:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))

    def open_(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(flag in mode for flag in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        refuse(path)
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)  # what pathlib calls
    monkeypatch.setattr(os, "mkdir", mkdir)
    return folder


def _write_dicom(path: Path) -> None:
    from medxlate.io.dicom_export import save_dicom_series

    save_dicom_series(_image(), path, modality="MR", source=None, model="test")


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("out.nii.gz", lambda path: save_volume(_image(), path)),
        ("out.json", lambda path: write_provenance(path.with_suffix(".nii"), {"synthetic": True})),
        ("out.csv", lambda path: write_bytes_atomic(path, b"a,b\n")),
        ("synthetic_mr", _write_dicom),  # a DICOM series folder
    ],
)
def test_read_only_folder_error_names_the_destination(read_only: Path, name: str, write: Callable) -> None:
    with pytest.raises(PermissionError) as error:
        write(read_only / name)
    assert error.value.filename == str(read_only / name)
    assert ".tmp" not in str(error.value) and str(read_only / name) in str(error.value)
    assert list(read_only.iterdir()) == []


def test_clean_stale_temporaries_removes_only_what_atomic_writes_leave(tmp_path: Path) -> None:
    (tmp_path / ".out.nii.gz.0123456789abcdef.tmp.nii.gz").write_bytes(b"partial")  # atomic_path
    (tmp_path / ".series.fedcba9876543210.tmp").mkdir()  # atomic_dir
    (tmp_path / ".series.fedcba9876543210.tmp" / "slice_0001.dcm").write_bytes(b"partial")
    for kept in (".hidden", ".x.tmp", "out.nii.gz", ".out.0123.tmp"):
        (tmp_path / kept).write_bytes(b"keep")
    removed = clean_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [
        ".out.nii.gz.0123456789abcdef.tmp.nii.gz",
        ".series.fedcba9876543210.tmp",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", ".out.0123.tmp", ".x.tmp", "out.nii.gz"]


def test_atomic_dir_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "series"
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as staging:
        (staging / "slice_0001.dcm").write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    target.mkdir()  # an empty folder is replaced
    with atomic_dir(target) as staging:
        (staging / "slice_0001.dcm").write_bytes(b"done")
    assert [p.name for p in tmp_path.iterdir()] == ["series"] and (target / "slice_0001.dcm").read_bytes() == b"done"


def test_atomic_dir_replaces_a_full_folder_only_when_asked_and_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "package"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(OSError), atomic_dir(target) as staging:  # not asked: a full folder stays
        (staging / "new.txt").write_text("new")
    with pytest.raises(RuntimeError), atomic_dir(target, replace_existing=True) as staging:
        (staging / "new.txt").write_text("half")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["package"] and [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_dir(target, replace_existing=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["package"] and [p.name for p in target.iterdir()] == ["new.txt"]
