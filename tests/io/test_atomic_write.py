"""Atomic writing of images and provenance sidecars: all or nothing, no temporary file left behind."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from torch.testing import assert_close

from medxlate.errors import InputDataError
from medxlate.io import load_volume, save_volume, write_provenance
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
