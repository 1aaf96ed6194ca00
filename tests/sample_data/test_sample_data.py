"""Checks of the shipped sample data (sample_data/lidc_idri_0001): geometry, intensities, noise.

Fast, offline: reads only the shipped files, and checks the area resampling itself on a
synthetic volume. Reference values measured at the ORIGINAL CT resolution by the generator are
stored in manifest.json ("qc"), so intensity preservation and the affine can be checked here
without the source CT.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from torch.testing import assert_close

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "sample_data" / "lidc_idri_0001"
MANIFEST = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
CASES = {c["id"]: c for c in MANIFEST["cases"]}
ROLES = ("source", "target", "target_noise_free", "mask")
DTYPES = {"source": np.int16, "target": np.int16, "target_noise_free": np.int16, "mask": np.uint8}
SIGMA = MANIFEST["simulation"]["noise_sigma"]
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
# Plausible HU of each reference tissue. The CT is contrast enhanced (aorta ~400 HU), so the liver
# sits at ~70 HU and the spleen at ~170 HU rather than unenhanced values.
HU_RANGES = {
    "liver": (40.0, 90.0),
    "spleen": (100.0, 250.0),
    "muscle": (20.0, 80.0),
    "fat": (-130.0, -80.0),
    "lung": (-950.0, -750.0),
    "aorta": (250.0, 550.0),
}


def t(x: np.ndarray | list) -> torch.Tensor:
    """float64 tensor for assert_close."""
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


@cache
def load(case_id: str, role: str) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Image]:
    """(data as float64, affine, image) of one file of a case."""
    img = nib.load(DATA / CASES[case_id]["files"][role])
    return np.asarray(img.dataobj, dtype=np.float64), img.affine, img


def box_slices(affine: np.ndarray, lo: list[float], hi: list[float]) -> tuple[slice, ...]:
    """Voxels whose whole footprint lies inside the world box [lo, hi] (axis-aligned affine)."""
    corners = np.linalg.inv(affine) @ np.array([[*lo, 1.0], [*hi, 1.0]]).T
    a, b = corners[:3].min(axis=1), corners[:3].max(axis=1)
    first, last = np.ceil(a + 0.5).astype(int), np.floor(b - 0.5).astype(int)
    return tuple(slice(int(f), int(e) + 1) for f, e in zip(first, last, strict=True))


def index_matrix(factor: list[float], start: list[float]) -> np.ndarray:
    """Output index -> continuous source index, as documented in the manifest."""
    m = np.eye(4)
    m[0, 0], m[1, 1] = factor
    m[0, 3], m[1, 3] = start
    return m


@pytest.fixture(scope="module")
def resample_area() -> ModuleType:
    """The generator's resampling module, imported from its file."""
    path = ROOT / "sample_data" / "resample_area.py"
    spec = importlib.util.spec_from_file_location("sample_data_resample_area", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need their module registered
    spec.loader.exec_module(module)
    return module


def test_manifest_files_exist_with_recorded_checksums() -> None:
    assert {c["split"] for c in CASES.values()} == {"train", "val"}
    for case in CASES.values():
        assert set(case["files"]) == set(ROLES)
        for role in ROLES:
            data = (DATA / case["files"][role]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == case["sha256"][role], case["files"][role]


def test_manifest_records_simulation_and_licence() -> None:
    sim = MANIFEST["simulation"]
    assert sim["simulated"] is True
    assert (sim["field_strength_t"], sim["tr_ms"], sim["te_ms"]) == (1.5, 500.0, 15.0)
    assert sim["bias_field"]["amplitude"] > 0 and SIGMA > 0 and isinstance(sim["seed"], int)
    assert "CC BY 3.0" in MANIFEST["source"]["licence"]
    assert "TCIA" in MANIFEST["source"]["credit"]


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_case_files_share_grid_and_match_manifest(case_id: str) -> None:
    case = CASES[case_id]
    _, ref_affine, _ = load(case_id, "source")
    for role in ROLES:
        data, affine, img = load(case_id, role)
        assert img.get_data_dtype() == DTYPES[role]
        assert list(data.shape) == case["shape"]
        assert_close(t(affine), t(ref_affine), rtol=0, atol=1e-5)
        assert_close(t(affine), t(case["affine"]), rtol=0, atol=1e-4)
        assert_close(t(img.header.get_zooms()), t(case["spacing_mm"]), rtol=0, atol=1e-5)
    for role in ("target", "target_noise_free"):
        assert b"SIMULATED" in load(case_id, role)[2].header["descrip"].tobytes()


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_slab_overlays_full_grid_and_source_ct(case_id: str) -> None:
    geo = MANIFEST["geometry"]
    first = CASES[case_id]["source_slices"][0]
    _, affine, _ = load(case_id, "source")
    shift = np.eye(4)
    shift[2, 3] = first
    # slab = full output grid shifted by its first slice
    assert_close(t(affine), t(np.asarray(geo["full_affine"]) @ shift), rtol=0, atol=1e-4)
    # full grid = source grid through the documented area-resampling map
    src = np.asarray(geo["source_affine"])
    m = index_matrix(geo["factor"], geo["start"])
    assert_close(t(geo["full_affine"]), t(src @ m), rtol=0, atol=1e-4)
    # corners and centre: a voxel centre is the centre of the source region it averages
    f0, f1 = geo["factor"]
    s0, s1 = geo["start"]
    n0, n1, nz = CASES[case_id]["shape"]
    for idx in ((0, 0, 0), (n0 - 1, n1 - 1, nz - 1), ((n0 - 1) / 2, (n1 - 1) / 2, (nz - 1) / 2)):
        src_idx = (s0 + idx[0] * f0, s1 + idx[1] * f1, first + idx[2], 1.0)
        assert_close(t(affine @ [*idx, 1.0]), t(src @ src_idx), rtol=0, atol=1e-3)
    region_lo = src @ (s0 - f0 / 2, s1 - f1 / 2, first - 0.5, 1.0)
    assert_close(t(affine @ [-0.5, -0.5, -0.5, 1.0]), t(region_lo), rtol=0, atol=1e-3)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_geometry_agrees_with_simpleitk(case_id: str) -> None:
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.ReadImage(str(DATA / CASES[case_id]["files"]["target"]))
    _, affine, _ = load(case_id, "target")
    size = img.GetSize()
    for idx in ((0.0, 0.0, 0.0), tuple(s - 1.0 for s in size), tuple((s - 1) / 2 for s in size)):
        lps = np.asarray(img.TransformContinuousIndexToPhysicalPoint(idx))
        assert_close(t(LPS_TO_RAS @ lps), t((affine @ [*idx, 1.0])[:3]), rtol=0, atol=1e-3)


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_noise_free_mr_centroid_and_integral_match_source(case_id: str) -> None:
    """Integral and world centroid of the MR, shipped file vs original resolution (end-to-end affine check)."""
    ref = MANIFEST["qc"]["noise_free_mr_centroids"][case_id]
    nf, affine, _ = load(case_id, "target_noise_free")
    total = nf.sum()
    centre = [
        (nf.sum(axis=tuple(a for a in range(3) if a != ax)) * np.arange(n)).sum() / total
        for ax, n in enumerate(nf.shape)
    ]
    assert_close(t((affine @ [*centre, 1.0])[:3]), t(ref["world_mm"]), rtol=0, atol=0.01)
    voxel_mm3 = abs(np.linalg.det(affine[:3, :3]))
    assert_close(t(total * voxel_mm3), t(ref["integral_au_mm3"]), rtol=1e-4, atol=0)


def test_slabs_disjoint_with_gap() -> None:
    gap_mm = MANIFEST["split"]["min_gap_slices"] * MANIFEST["geometry"]["spacing_mm"][2]
    extents = []
    for case_id in CASES:
        data, affine, _ = load(case_id, "source")
        z = sorted(float((affine @ [0, 0, k, 1.0])[2]) for k in (-0.5, data.shape[2] - 0.5))
        extents.append(z)
    extents.sort()
    for (_, prev_hi), (next_lo, _) in itertools.pairwise(extents):
        assert next_lo - prev_hi >= gap_mm - 1e-3
    val = [c for c in CASES.values() if c["split"] == "val"]
    assert all(25 <= c["shape"][2] <= 30 for c in val)


@pytest.mark.parametrize("roi", MANIFEST["qc"]["reference_rois"], ids=lambda r: r["tissue"])
def test_reference_roi_values_preserved(roi: dict) -> None:
    """Mean HU / MR of a homogeneous box: shipped file (through its affine) vs original resolution."""
    ct, affine, _ = load(roi["case"], "source")
    nf, _, _ = load(roi["case"], "target_noise_free")
    box = box_slices(affine, *roi["world_box_mm"])
    assert ct[box].size == roi["output_voxels"] >= 27
    assert abs(ct[box].mean() - roi["source_mean_hu"]) <= 5.0
    assert abs(nf[box].mean() - roi["source_mean_mr_noise_free"]) <= 0.02 * roi["source_mean_mr_noise_free"] + 3
    lo, hi = HU_RANGES[roi["tissue"]]
    assert lo <= ct[box].mean() <= hi


def roi_mean_mr(tissue: str) -> float:
    """Noise-free MR mean of the reference box of one tissue."""
    (roi,) = [r for r in MANIFEST["qc"]["reference_rois"] if r["tissue"] == tissue]
    nf, affine, _ = load(roi["case"], "target_noise_free")
    return float(nf[box_slices(affine, *roi["world_box_mm"])].mean())


def test_t1w_contrast() -> None:
    fat, muscle, liver = roi_mean_mr("fat"), roi_mean_mr("muscle"), roi_mean_mr("liver")
    assert fat > 2.0 * muscle  # fat bright on T1w
    assert liver > muscle  # liver (T1 ~590 ms) brighter than muscle (T1 ~860 ms)
    assert roi_mean_mr("lung") < 0.1 * fat
    assert roi_mean_mr("aorta") < 0.1 * fat  # spin-echo flow void
    for case_id in CASES:
        ct, _, _ = load(case_id, "source")
        nf, _, _ = load(case_id, "target_noise_free")
        dense = (ct > 800) & (load(case_id, "mask")[0] > 0)  # cortical bone (and dense contrast)
        assert dense.sum() > 100 and nf[dense].mean() < 0.2 * fat


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_ct_hu_plausible(case_id: str) -> None:
    ct, _, _ = load(case_id, "source")
    mask = load(case_id, "mask")[0] > 0
    assert ct.min() >= -1024 and ct.max() <= 3071
    assert -1024 <= np.median(ct[~mask]) <= -950  # air
    hist, edges = np.histogram(ct[mask], bins=np.arange(-200, 1, 5))
    assert -130 <= edges[hist.argmax()] <= -80  # fat peak


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_rician_noise_matches_stated_sigma(case_id: str) -> None:
    mr, _, _ = load(case_id, "target")
    nf, _, _ = load(case_id, "target_noise_free")
    background = nf == 0  # Rayleigh: E[m^2] = 2 sigma^2, E[m] = sigma sqrt(pi/2)
    assert background.sum() > 10_000
    assert_close(t(np.sqrt(np.mean(mr[background] ** 2) / 2)), t(SIGMA), rtol=0.02, atol=0)
    assert_close(t(mr[background].mean()), t(SIGMA * np.sqrt(np.pi / 2)), rtol=0.02, atol=0)
    bright = nf > 15 * SIGMA  # high SNR: noisy - clean ~ N(sigma^2 / 2S, sigma^2)
    diff = mr[bright] - nf[bright]
    assert bright.sum() > 10_000
    assert_close(t(diff.std()), t(SIGMA), rtol=0.02, atol=0)
    assert abs(diff.mean()) < 0.05 * SIGMA


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_body_mask_covers_ct_body(case_id: str) -> None:
    ct, _, _ = load(case_id, "source")
    mask = load(case_id, "mask")[0]
    nf, _, _ = load(case_id, "target_noise_free")
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert 0.3 < mask.mean() < 0.8
    assert (mask[ct > -300] > 0).mean() > 0.97  # all but the patient table
    far_outside = ~ndi.binary_dilation(mask > 0, iterations=2)
    assert not nf[far_outside].any()  # the MR has signal only in the body


def test_area_resampling_preserves_values_mass_and_world_centroid(resample_area: ModuleType, tmp_path: Path) -> None:
    """Synthetic check of the generator's resampler, with a flipped, anisotropic source grid."""
    src_affine = np.array([[-0.7, 0, 0, 40.0], [0, 0.8, 0, -20.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1]])
    ii, jj, kk = np.meshgrid(np.arange(60), np.arange(50), np.arange(4), indexing="ij")
    world = np.einsum("ab,bijk->aijk", src_affine[:3, :3], np.stack([ii, jj, kk])) + src_affine[:3, 3, None, None, None]
    blob = np.exp(-((world[0] - 25.0) ** 2 + (world[1] + 3.0) ** 2) / (2 * 4.0**2))
    # the output footprints cover the whole source array, so the integral must be conserved exactly
    grid = resample_area.InplaneGrid(factor=(2.0 / 0.7, 2.0 / 0.8), start=(0.9, -0.4), shape=(24, 24))
    out = resample_area.resample_inplane(blob, grid, fill=0.0)
    affine = grid.affine(src_affine)
    assert_close(t(np.abs(np.diag(affine)[:3])), t([2.0, 2.0, 2.5]), rtol=0, atol=1e-12)
    # constant image stays constant, including where the footprint leaves the array
    const = resample_area.resample_inplane(np.full(blob.shape, 5.0), grid, fill=5.0)
    assert_close(t(const), t(np.full(const.shape, 5.0)), rtol=0, atol=1e-12)
    # mass and world centroid are preserved
    assert_close(t(out.sum() * 4.0), t(blob.sum() * 0.7 * 0.8), rtol=1e-9, atol=0)
    idx_out = np.stack(np.meshgrid(*[np.arange(n) for n in out.shape], indexing="ij"))
    centroid_out = (affine[:3, :3] @ (idx_out * out).reshape(3, -1).sum(1) / out.sum()) + affine[:3, 3]
    centroid_src = (world * blob).reshape(3, -1).sum(1) / blob.sum()
    assert_close(t(centroid_out), t(centroid_src), rtol=0, atol=0.02)
    # SimpleITK reads the written affine to the same world coordinates
    sitk = pytest.importorskip("SimpleITK")
    path = tmp_path / "blob.nii.gz"
    nib.save(nib.Nifti1Image(out.astype(np.float32), affine), path)
    cont_idx = np.linalg.solve(affine[:3, :3], centroid_out - affine[:3, 3])
    lps = np.asarray(sitk.ReadImage(str(path)).TransformContinuousIndexToPhysicalPoint(cont_idx.tolist()))
    assert_close(t(LPS_TO_RAS @ lps), t(centroid_src), rtol=0, atol=0.02)


def test_plan_inplane_grid_covers_mask_with_margin(resample_area: ModuleType) -> None:
    mask = np.zeros((100, 80, 3), dtype=bool)
    mask[10:71, 5:40, 1] = True
    grid = resample_area.plan_inplane_grid(mask, (0.7, 0.8), 2.0, 10.0, 8)
    assert all(n % 8 == 0 for n in grid.shape)
    for ax, (lo, hi, sp) in enumerate(((10, 70, 0.7), (5, 39, 0.8))):
        first = grid.start[ax] - grid.factor[ax] / 2  # footprint edges, source index units
        last = grid.start[ax] + (grid.shape[ax] - 0.5) * grid.factor[ax]
        assert (lo - 0.5 - first) * sp >= 10.0 - 1e-9 and (last - hi - 0.5) * sp >= 10.0 - 1e-9
