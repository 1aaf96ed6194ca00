"""Bad input to load_volume: one clear InputDataError naming the path, chained to its cause."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medxlate.errors import InputDataError
from medxlate.io import load_volume, save_volume
from tests.dicom_factory import write_ct_series


def _truncated_nifti(tmp_path: Path) -> Path:
    path = save_volume(torch.rand(1, 20, 20, 20), tmp_path / "cut.nii.gz", affine=np.eye(4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _text(name: str) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_text("this is not an image\n" * 10)
        return path

    return make


def _truncated_dicom(keep_bytes: int) -> Callable[[Path], Path]:
    """A series folder whose middle slice was cut short (an interrupted copy)."""

    def make(tmp_path: Path) -> Path:
        folder = tmp_path / "series"
        paths = write_ct_series(folder, np.zeros((4, 4, 3)), shuffle=False)
        data = paths[1].read_bytes()
        paths[1].write_bytes(data[: keep_bytes if keep_bytes > 0 else len(data) + keep_bytes])
        return folder

    return make


CASES = {
    "missing": (lambda tmp_path: tmp_path / "nope.nii.gz", "does not exist", False),
    "text.nii.gz": (_text("x.nii.gz"), "cannot read NIfTI", True),
    "text.nii": (_text("x.nii"), "cannot read NIfTI", True),
    "truncated.nii.gz": (_truncated_nifti, "cannot read NIfTI", True),
    "text.txt": (_text("notes.txt"), "suffix '.txt' that is not DICOM", False),
    "text.dcm": (_text("fake.dcm"), "suffix '.dcm' that is not DICOM", False),
    "text.nrrd": (_text("x.nrrd"), "cannot read image file", True),
    "text.mha": (_text("x.mha"), "cannot read image file", True),
    "DICOM cut in header": (_truncated_dicom(600), "are not images", False),
    "DICOM cut in pixels": (_truncated_dicom(-10), "truncated: pixel data needs 32 bytes", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_input_data_error(tmp_path: Path, case: str) -> None:
    make, match, chained = CASES[case]
    path = make(tmp_path)
    with pytest.raises(InputDataError, match=match) as info:
        load_volume(path)
    assert str(path) in str(info.value)
    assert "expected" in str(info.value)
    assert (info.value.__cause__ is not None) == chained


def test_nibabel_agrees_the_text_file_is_not_nifti(tmp_path: Path) -> None:
    """Guards the premise of the case above: the fake file really is unreadable."""
    path = _text("x.nii.gz")(tmp_path)
    with pytest.raises(nib.filebasedimages.ImageFileError):
        nib.load(path)
