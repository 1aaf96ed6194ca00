"""NIfTI: save_volume -> load_volume round trip, checked against nibabel and SimpleITK directly."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from torch.testing import assert_close

from medxlate.errors import GeometryError, InputDataError
from medxlate.io import load_volume, save_volume
from tests.io.geometry_helpers import CORNERS, affine_world, rotation, sitk_world_ras, sitk_xyz

SHAPE = (5, 6, 7)


def _affine() -> torch.Tensor:
    """x flipped, anisotropic (1.5, 0.8, 3.0) mm, slightly oblique, non-zero origin."""
    affine = np.eye(4)
    affine[:3, :3] = rotation(0.0, 0.0, 10.0) @ np.diag([-1.5, 0.8, 3.0])
    affine[:3, 3] = [40.0, -25.5, 60.25]
    return torch.as_tensor(affine)


def _image(channels: int = 1, seed: int = 0) -> MetaTensor:
    data = torch.from_numpy(np.random.default_rng(seed).normal(0.0, 300.0, (channels, *SHAPE)).astype(np.float32))
    return MetaTensor(data, affine=_affine())


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_round_trip_values_and_affine(tmp_path: Path, suffix: str) -> None:
    img = _image()
    path = save_volume(img, tmp_path / "deep" / "folder" / f"out{suffix}", description="SYNTHETIC test")
    assert path == tmp_path / "deep" / "folder" / f"out{suffix}"
    loaded = load_volume(path)
    assert loaded.shape == (1, *SHAPE)
    assert loaded.dtype == torch.float32
    assert_close(loaded.as_tensor(), img.as_tensor())
    assert_close(loaded.affine, _affine(), atol=1e-5, rtol=0)  # qform/sform are stored as float32
    assert_close(torch.as_tensor(loaded.meta["spacing"]), torch.tensor([1.5, 0.8, 3.0], dtype=torch.float64))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_nifti_scaling_gives_physical_units(tmp_path: Path) -> None:
    """A CT stored by another tool as int16 with scl_slope/scl_inter loads in HU."""
    stored = np.arange(-4, 4, dtype=np.int16).reshape(2, 2, 2)
    nii = nib.Nifti1Image(stored, _affine().numpy())
    nii.header.set_slope_inter(0.5, -1000.0)
    nib.save(nii, tmp_path / "ct.nii.gz")
    loaded = load_volume(tmp_path / "ct.nii.gz")
    assert_close(loaded[0].as_tensor(), torch.from_numpy(stored * 0.5 - 1000.0).float())
    assert_close(loaded.affine, _affine(), atol=1e-5, rtol=0)


def test_header_written_as_documented(tmp_path: Path) -> None:
    path = save_volume(_image(), tmp_path / "out.nii.gz", description="SYNTHETIC MR from CT")
    nii = nib.load(path)
    header = nii.header
    assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1
    assert_close(torch.as_tensor(nii.get_sform()), _affine(), atol=1e-5, rtol=0)
    assert_close(torch.as_tensor(nii.get_qform()), _affine(), atol=1e-5, rtol=0)
    assert header.get_xyzt_units() == ("mm", "unknown")
    assert header["descrip"].item() == b"SYNTHETIC MR from CT"
    assert header.get_data_dtype() == np.float32
    assert nii.shape == SHAPE


def test_simpleitk_sees_the_same_world(tmp_path: Path) -> None:
    img = _image()
    path = save_volume(img, tmp_path / "out.nii.gz")
    reference = sitk.ReadImage(str(path))
    assert_close(sitk_xyz(reference), img[0].as_tensor().double())
    assert_close(affine_world(img.affine, CORNERS), sitk_world_ras(reference, CORNERS), atol=1e-4, rtol=0)


def test_multichannel_written_4d_and_read_back(tmp_path: Path) -> None:
    img = _image(channels=3)
    path = save_volume(img, tmp_path / "multi.nii.gz")
    assert nib.load(path).shape == (*SHAPE, 3)
    loaded = load_volume(path)
    assert loaded.shape == (3, *SHAPE)
    assert_close(loaded.as_tensor(), img.as_tensor())
    assert_close(loaded.affine, _affine(), atol=1e-5, rtol=0)


def test_integer_dtype_rounds_and_clips(tmp_path: Path) -> None:
    data = torch.tensor([-40000.0, -1.5, -0.5, 0.5, 1.5, 2.4, 2.6, 40000.0]).reshape(1, 2, 2, 2)
    path = save_volume(data, tmp_path / "int.nii.gz", affine=_affine(), dtype=np.int16)
    nii = nib.load(path)
    assert nii.get_data_dtype() == np.int16
    stored = np.asarray(nii.dataobj)
    assert nii.dataobj.slope == 1.0 and nii.dataobj.inter == 0.0  # no hidden scaling
    expected = np.array([-32768, -2, 0, 0, 2, 2, 3, 32767], dtype=np.int16).reshape(2, 2, 2)  # half to even
    assert_close(torch.from_numpy(stored), torch.from_numpy(expected))


def test_torch_dtype_and_default_dtypes(tmp_path: Path) -> None:
    mask = torch.zeros(1, *SHAPE, dtype=torch.bool)
    mask[0, 1:3] = True
    assert nib.load(save_volume(mask, tmp_path / "m.nii.gz", affine=_affine())).get_data_dtype() == np.uint8
    labels = torch.arange(np.prod(SHAPE), dtype=torch.int64).reshape(1, *SHAPE) - 5  # -5..204: int16
    assert nib.load(save_volume(labels, tmp_path / "l.nii.gz", affine=_affine())).get_data_dtype() == np.int16
    as_uint8 = save_volume(_image(), tmp_path / "u.nii.gz", dtype=torch.uint8)
    assert nib.load(as_uint8).get_data_dtype() == np.uint8
    doubles = torch.zeros(1, *SHAPE, dtype=torch.float64)
    assert nib.load(save_volume(doubles, tmp_path / "d.nii.gz", affine=_affine())).get_data_dtype() == np.float32


def test_descrip_truncated_on_character_boundary(tmp_path: Path) -> None:
    text = "SYNTHETIC " + "é" * 60  # 10 + 120 bytes in UTF-8
    path = save_volume(_image(), tmp_path / "d.nii.gz", description=text)
    stored = nib.load(path).header["descrip"].item()
    assert len(stored) <= 79
    assert stored.decode("utf-8") == text[: 10 + 34]  # 10 + 34 * 2 = 78 bytes: no half character


def test_lps_metatensor_is_written_in_ras(tmp_path: Path) -> None:
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ _affine().numpy()
    img = MetaTensor(_image().as_tensor(), affine=torch.as_tensor(lps), meta={"space": "LPS"})
    loaded = load_volume(save_volume(img, tmp_path / "lps.nii.gz"))
    assert_close(loaded.affine, _affine(), atol=1e-5, rtol=0)


def test_sheared_affine_keeps_sform_only(tmp_path: Path) -> None:
    sheared = _affine().clone()
    sheared[:3, 2] += torch.tensor([0.0, 0.9, 0.0], dtype=torch.float64)  # gantry-tilt-like shear
    path = save_volume(_image().as_tensor(), tmp_path / "tilt.nii.gz", affine=sheared)
    nii = nib.load(path)
    assert int(nii.header["sform_code"]) == 1 and int(nii.header["qform_code"]) == 0
    assert_close(torch.as_tensor(nii.affine), sheared, atol=1e-5, rtol=0)


def test_2d_image_is_written_with_one_slice(tmp_path: Path) -> None:
    affine_2d = torch.tensor([[-0.5, 0.0, 10.0], [0.0, 0.7, -4.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    data = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
    loaded = load_volume(save_volume(data, tmp_path / "xray.nii.gz", affine=affine_2d))
    assert loaded.shape == (1, 3, 4, 1)
    assert_close(loaded[..., 0].as_tensor(), data)
    expected = torch.tensor(
        [[-0.5, 0.0, 0.0, 10.0], [0.0, 0.7, 0.0, -4.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64
    )
    assert_close(loaded.affine, expected, atol=1e-6, rtol=0)


def test_plain_tensor_without_affine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GeometryError, match="without `affine`") as info:
        save_volume(torch.zeros(1, *SHAPE), tmp_path / "x.nii.gz")
    assert str(tmp_path / "x.nii.gz") in str(info.value)
    assert not (tmp_path / "x.nii.gz").exists()


def test_conflicting_affine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GeometryError, match="different `affine`"):
        save_volume(_image(), tmp_path / "x.nii.gz", affine=torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path_name": "x.nrrd"}, "expected .nii or .nii.gz"),
        ({"dtype": np.int64}, "dtype=int64"),
        ({"dtype": "not-a-dtype"}, "is not a data type"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    path = tmp_path / kwargs.pop("path_name", "x.nii.gz")
    with pytest.raises(InputDataError, match=match):
        save_volume(_image(), path, **kwargs)


def test_huge_integers_need_an_explicit_dtype(tmp_path: Path) -> None:
    data = torch.tensor([0, 2**40], dtype=torch.int64).reshape(1, 2, 1, 1)
    with pytest.raises(InputDataError, match="beyond int32"):
        save_volume(data, tmp_path / "x.nii.gz", affine=_affine())


def test_nan_cannot_be_written_as_integer(tmp_path: Path) -> None:
    data = torch.zeros(1, 2, 2, 2)
    data[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputDataError, match="1 voxels are NaN"):
        save_volume(data, tmp_path / "x.nii.gz", affine=_affine(), dtype=np.int16)
