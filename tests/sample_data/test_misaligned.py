"""The misaligned and unpaired variants of the sample (sample_data/misalign.py), on a tiny fake sample.

The real variant takes ~20 s to build, so the tests build it from a tiny sample folder with the
shipped layout (manifest + slabs, LAS 2 x 2 x 2.5 mm) whose images are smooth, so that interpolation
error is small next to the misalignment.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[2]
SHAPE = (32, 28, 24)
FILES = {"source": "ct", "target": "mr_t1", "target_noise_free": "mr_t1_noisefree", "mask": "body_mask"}


@pytest.fixture(scope="module")
def misalign() -> ModuleType:
    """The variant module, imported from its file (it imports make_sample_data from its folder)."""
    spec = importlib.util.spec_from_file_location("misalign", ROOT / "sample_data" / "misalign.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need their module registered
    spec.loader.exec_module(module)
    return module


def _affine(z0: float) -> np.ndarray:
    affine = np.diag([-2.0, 2.0, 2.5, 1.0])
    affine[:3, 3] = [30.0, -20.0, z0]
    return affine


def _blobs(shape: tuple[int, int, int], seed: int, scale: float) -> np.ndarray:
    """Smooth positive image, ~0 near the borders: Gaussian blobs (sigma 2.5-3.5 voxels) in the central part."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij"), axis=-1)
    out = np.zeros(shape)
    for _ in range(6):
        centre, sigma = rng.uniform(0.35, 0.65, 3) * np.array(shape), rng.uniform(2.5, 3.5)
        out += np.exp(-((grid - centre) ** 2).sum(-1) / (2 * sigma**2))
    return out * scale


def _write(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))


def write_tiny_sample(root: Path) -> Path:
    """Write a three-slab sample folder with the shipped manifest's structure into ``root``."""
    cases = []
    for index, (case_id, split) in enumerate((("train_1", "train"), ("val_1", "val"), ("train_2", "train"))):
        affine = _affine(-100.0 + 40.0 * index)
        clean = _blobs(SHAPE, index, 1000.0)
        arrays = {
            "source": np.rint(_blobs(SHAPE, 10 + index, 500.0) - 200).astype(np.int16),
            "target": np.rint(clean + 20).astype(np.int16),
            "target_noise_free": np.rint(clean).astype(np.int16),
            "mask": (clean > 100).astype(np.uint8),
        }
        files = {role: f"{case_id}/{FILES[role]}.nii.gz" for role in FILES}
        for role, array in arrays.items():
            _write(root / files[role], array, affine)
        cases.append({"id": case_id, "split": split, "files": files, "shape": list(SHAPE), "affine": affine.tolist()})
    manifest = {"name": "tiny", "roles": {}, "simulation": {"noise_sigma": 20.0}, "cases": cases}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def tiny_sample(tmp_path: Path) -> Path:
    """A three-slab sample folder with the shipped manifest's structure."""
    return write_tiny_sample(tmp_path / "sample")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deformation_is_smooth_invertible_and_bounded(misalign: ModuleType) -> None:
    affine = _affine(0.0)
    deformation = misalign.random_deformation((40, 32, 16), affine, np.random.default_rng(3))
    points = misalign.grid_points((40, 32, 16), affine)
    local = np.linalg.norm(deformation.local(points), axis=-1)
    assert local.max() == pytest.approx(misalign.MAX_LOCAL_MM, rel=1e-6)
    field = deformation(points) - points
    jac_min, jac_max = misalign.jacobian_range(field, affine[:3, :3])
    assert 0.3 < jac_min <= jac_max < 2.0  # smooth, no folding
    inverse, residual = deformation.inverse(points)
    assert residual < 1e-3
    np.testing.assert_allclose(deformation(inverse), points, atol=1e-3)
    # the determinant follows the world direction (x flipped here): u = 0.1 * x_world stretches by 1.1
    stretch = np.zeros_like(points)
    stretch[..., 0] = 0.1 * points[..., 0]
    np.testing.assert_allclose(misalign.jacobian_range(stretch, affine[:3, :3]), (1.1, 1.1))
    again = misalign.random_deformation((40, 32, 16), affine, np.random.default_rng(3))
    np.testing.assert_array_equal(again(points), deformation(points))  # seeded


def test_saved_field_maps_the_misaligned_mr_back(misalign: ModuleType, tiny_sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "misaligned"
    misalign.build_misaligned(tiny_sample, out, seed=5)
    manifest = json.loads((out / "manifest.json").read_text())
    case = next(c for c in manifest["cases"] if c["id"] == "train_1")
    record = case["misalignment"]
    assert record["local_max_mm"] == pytest.approx(10.0) and record["jacobian_range"][0] > 0.1
    field_img = nib.load(str(out / record["field"]))
    assert field_img.shape == (*SHAPE, 1, 3) and field_img.header.get_intent()[0] == "vector"
    np.testing.assert_allclose(field_img.affine, _affine(-100.0))
    reference = sitk.ReadImage(str(tiny_sample / case["files"]["target_noise_free"]), sitk.sitkFloat32)
    moved = sitk.ReadImage(str(out / case["files"]["target_noise_free"]), sitk.sitkFloat32)
    back = sitk.Resample(moved, reference, misalign.sitk_transform(out / record["field"]), sitk.sitkLinear, 0.0)
    truth, back_arr, moved_arr = (sitk.GetArrayFromImage(i) for i in (reference, back, moved))
    error_back, error_moved = np.abs(back_arr - truth).mean(), np.abs(moved_arr - truth).mean()
    assert error_back < 0.1 * error_moved and np.abs(back_arr - truth).max() < 0.05 * truth.max()


def test_misaligned_keeps_ct_mask_and_validation_and_is_reproducible(
    misalign: ModuleType, tiny_sample: Path, tmp_path: Path
) -> None:
    first = misalign.build_misaligned(tiny_sample, tmp_path / "a", seed=5)
    assert misalign.build_misaligned(tiny_sample, tmp_path / "b", seed=5) == first  # same bytes
    assert misalign.build_misaligned(tiny_sample, tmp_path / "c", seed=6) != first
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    for case in manifest["cases"]:
        same = ("source", "mask") if case["split"] == "train" else tuple(FILES)
        for role in same:
            assert _sha(tmp_path / "a" / case["files"][role]) == _sha(tiny_sample / case["files"][role])
        for role, rel in case["files"].items():
            assert case["sha256"][role] == first[rel]
        assert ("misalignment" in case) == (case["split"] == "train")
        if case["split"] == "train":
            assert _sha(tmp_path / "a" / case["files"]["target"]) != _sha(tiny_sample / case["files"]["target"])


def test_unpaired_variant_has_disjoint_roles(misalign: ModuleType, tiny_sample: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "sample_data"))
    import make_sample_data

    assert make_sample_data.main(["--variant", "unpaired", "--sample", str(tiny_sample), "--out", str(tmp_path)]) == 0
    cases = {c["id"]: c for c in json.loads((tmp_path / "manifest.json").read_text())["cases"]}
    assert set(cases["train_1"]["files"]) == {"source", "mask"}
    assert set(cases["train_2"]["files"]) == {"target", "target_noise_free"}
    assert set(cases["val_1"]["files"]) == set(FILES)
    for case in cases.values():
        for rel in case["files"].values():
            assert _sha(tmp_path / rel) == _sha(tiny_sample / rel)
    assert not (tmp_path / "train_1" / "mr_t1.nii.gz").exists() and not (tmp_path / "train_2" / "ct.nii.gz").exists()
