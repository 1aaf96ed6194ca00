"""A folder of CT volumes (NIfTI files or a DICOM tree) as X-ray -> CT data: ids, splits, masks, cache, errors."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medxlate.data.bodymask import body_mask_from_ct, body_mask_volume
from medxlate.data.ct_source import CtCase, read_ct_source
from medxlate.data.drr import build_grid_cache
from medxlate.data.splits import threshold_splits
from medxlate.errors import InputDataError
from medxlate.io.provenance import sha256_file
from medxlate.xray.cases import grid_mask
from tests.conftest import phantom, tiny_affine, write_nifti
from tests.dicom_factory import write_ct_series

SIZE, FOV = 16, 40.0  # the phantom spans 30 x 30 x 36 mm


def write_ct_folder(root: Path, seeds: list[int], suffix: str = ".nii") -> list[Path]:
    """One phantom CT per seed (LAS, anisotropic), ``vol_<seed><suffix>``; ``.nii`` bytes are reproducible."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = root / f"vol_{seed:02d}{suffix}"
        write_nifti(phantom(seed)[0], path, tiny_affine())
        paths.append(path)
    return paths


def test_threshold_splits_are_stable_seeded_and_never_empty() -> None:
    identities = [f"volume-{n}" for n in range(40)]
    first = threshold_splits(identities, 0.25, seed=3)
    assert threshold_splits(identities, 0.25, seed=3) == first
    # the documented rule: val when sha256("<seed>:<identity>") read as a fraction of 2**256 is below 0.25
    rule = [int.from_bytes(hashlib.sha256(f"3:{i}".encode()).digest(), "big") / 2**256 < 0.25 for i in identities]
    assert first == ["val" if v else "train" for v in rule] and first.count("val") == 5
    assert threshold_splits([*identities, "volume-40", "volume-41"], 0.25, seed=3)[:40] == first  # no reshuffle
    assert threshold_splits(identities, 0.25, seed=4) != first
    assert threshold_splits(["same", "other", "same"], 0.5, seed=0)[0] == threshold_splits(["same", "x"], 0.5, 0)[0]
    # tiny folders: the item nearest the threshold moves so that neither split is empty
    assert sorted(threshold_splits(["a", "b"], 1e-9, seed=0)) == ["train", "val"]
    assert sorted(threshold_splits(["a", "b"], 1 - 1e-9, seed=0)) == ["train", "val"]
    with pytest.raises(ValueError, match="two items"):
        threshold_splits(["a"], 0.5, seed=0)


def test_nifti_folder_cases_ids_and_content_splits(tmp_path: Path) -> None:
    files = write_ct_folder(tmp_path / "cts", [3, 1, 2, 0, 4])
    (tmp_path / "cts" / "notes.txt").write_text("not a volume")
    (tmp_path / "cts" / "._vol_00.nii").write_bytes(b"\0" * 10)  # a macOS resource fork: skipped
    source = read_ct_source(tmp_path / "cts", val_fraction=0.4, split_seed=3)
    ordered = sorted(files)
    cases = sorted([*source.split("train"), *source.split("val")], key=lambda c: c.id)
    assert [c.id for c in cases] == ["ct_000", "ct_001", "ct_002", "ct_003", "ct_004"]
    assert [c.label for c in cases] == [str(p) for p in ordered]  # ids follow the sorted paths
    expected = threshold_splits([sha256_file(p) for p in ordered], 0.4, seed=3)  # by content digest
    assert [("val" if c in source.split("val") else "train") for c in cases] == expected
    assert expected.count("val") == 3  # by the threshold alone, no split was empty: nothing moved
    assert source.digest == read_ct_source(tmp_path / "cts", 0.4, 3).digest
    ct, mask = cases[2].load()
    np.testing.assert_allclose(ct[0].numpy(), phantom(2)[0], rtol=0, atol=0)
    np.testing.assert_allclose(np.asarray(ct.affine), tiny_affine(), rtol=0, atol=1e-6)
    assert mask is not None and mask.shape == ct.shape

    # a new volume and a renamed one: every volume keeps its split (content, not name or position)
    by_content = {sha256_file(p): s for p, s in zip(ordered, expected, strict=True)}
    files[0].rename(tmp_path / "cts" / "zz_renamed.nii")
    write_ct_folder(tmp_path / "cts", [5])
    again = read_ct_source(tmp_path / "cts", val_fraction=0.4, split_seed=3)
    for split in ("train", "val"):
        for case in again.split(split):
            digest = sha256_file(Path(case.label))
            assert by_content.get(digest, split) == split, case.label
    assert len(again.split("val")) == 3 and read_ct_source(tmp_path / "cts", 0.4, split_seed=2).digest != again.digest


def test_body_mask_from_the_ct_fills_axial_holes_in_any_orientation() -> None:
    shape = (20, 24, 12)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    body = ((x - 0.2) / 0.75) ** 2 + (y / 0.8) ** 2 < 1  # off-centre: a flip would show
    lung = (((x - 0.2) / 0.3) ** 2 + (y / 0.3) ** 2 < 1) & (z > 0)  # a hole open at the top: axial only
    array = np.where(lung, -850.0, np.where(body, 40.0, -1000.0)).astype(np.float32)
    expected = body_mask_from_ct(array)  # the phantom's third axis is axial
    np.testing.assert_array_equal(expected, body)  # the lung is filled
    las = MetaTensor(torch.from_numpy(array)[None], affine=torch.as_tensor(tiny_affine()))
    mask = body_mask_volume(las)
    assert mask.affine[0, 0] > 0  # computed on the RAS grid (the input is LAS)
    np.testing.assert_array_equal(grid_mask(mask, las)[0].numpy(), expected)
    # the same CT stored sagittally (array axes z, y, x): the hole filling still runs over axial slices
    affine = tiny_affine()[:, [2, 1, 0, 3]]
    sagittal = MetaTensor(torch.from_numpy(array.transpose(2, 1, 0).copy())[None], affine=torch.as_tensor(affine))
    np.testing.assert_array_equal(grid_mask(body_mask_volume(sagittal), las)[0].numpy(), expected)
    assert not body_mask_from_ct(array.transpose(2, 1, 0))[lung.transpose(2, 1, 0)].all()  # the naive way fails


def _dicom_tree(root: Path) -> tuple[dict[str, str], list[Path]]:
    """Patient A: two CT reconstructions of one scan; patient B: one CT and an MR; a localizer. Returns
    the identifiers written (patient names, IDs) and the files of B's CT in slice order."""
    ct_a, ct_b = phantom(7)[0], phantom(8)[0]
    spacing, origin = (1.5, 1.25, 3.0), (-15.0, -14.0, -18.0)
    a, b = root / "Doe^Jane_PX-111", root / "Roe^Rick_PX-222"
    common = {"spacing": spacing, "origin": origin, "row_dir": (-1.0, 0.0, 0.0)}
    write_ct_series(a / "soft", ct_a, **common, seed=1, series_number=2, patient_name="Doe^Jane", patient_id="PX-111")
    sharp = ct_a + np.where(ct_a > 0, 20, 0)
    write_ct_series(a / "sharp", sharp, **common, seed=1, series_number=3, patient_name="Doe^Jane", patient_id="PX-111")
    rick = write_ct_series(
        b / "ct", ct_b, **common, seed=2, series_number=2, patient_name="Roe^Rick", patient_id="PX-222"
    )
    write_ct_series(
        b / "mr", phantom(8)[1], **common, seed=2, series_number=4, modality="MR", intercept=0.0, patient_id="PX-222"
    )
    write_ct_series(
        a / "scout",
        ct_a[:, :, :1],
        **common,
        seed=1,
        series_number=1,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        patient_name="Doe^Jane",
        patient_id="PX-111",
    )
    return {"name_a": "Jane", "name_b": "Rick", "id_a": "PX-111", "id_b": "PX-222"}, rick


def test_dicom_tree_one_case_per_ct_series_patients_kept_together(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    secrets, _ = _dicom_tree(tmp_path / "tree")
    source = read_ct_source(tmp_path / "tree", val_fraction=0.5, split_seed=0)
    train, val = source.split("train"), source.split("val")
    cases = sorted([*train, *val], key=lambda c: c.id)
    assert [c.id for c in cases] == ["ct_000", "ct_001", "ct_002"]  # 3 CT volumes; MR and scout left out
    # sorted by path: Doe^Jane/sharp, Doe^Jane/soft, Roe^Rick/ct; both of Jane's series in one split
    assert {c.id for c in train} in ({"ct_000", "ct_001"}, {"ct_002"})
    hu, mask = cases[1].load()
    assert hu.shape == (1, 20, 24, 12) and mask is not None
    np.testing.assert_allclose(hu[0].numpy(), phantom(7)[0], atol=0.5)
    words = [c.id + c.label + c.key for c in cases] + [r.getMessage() for r in caplog.records]
    for secret in secrets.values():
        assert not any(secret in text for text in words), secret
    assert any("3 CT volumes" in r.getMessage() for r in caplog.records)


def test_dicom_series_errors_are_redacted(tmp_path: Path) -> None:
    _, rick = _dicom_tree(tmp_path / "tree")
    source = read_ct_source(tmp_path / "tree", val_fraction=0.5, split_seed=0)
    case = next(c for c in [*source.split("train"), *source.split("val")] if c.id == "ct_002")
    rick[5].unlink()  # a file gone since the scan: the loader refuses the series
    with pytest.raises(InputDataError, match=r"tree: CT series ct_002: ") as caught:
        case.load()
    assert "Roe" not in str(caught.value) and "PX-222" not in str(caught.value)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda root: None, r"cts: no CT volume found; expected NIfTI/NRRD/MetaImage files .* found DICOM .* none"),
        (lambda root: write_ct_folder(root, [0]), r"cts: found 1 CT volume; X-ray -> CT needs at least 2"),
        (
            lambda root: write_ct_series(root / "mr", phantom(0)[1], modality="MR", intercept=0.0),
            r"cts: no CT volume found.*modality MR \(0 CT series",
        ),
    ],
)
def test_folder_errors_are_named(tmp_path: Path, make: Callable[[Path], object], match: str) -> None:
    (tmp_path / "cts").mkdir()
    make(tmp_path / "cts")
    with pytest.raises(InputDataError, match=match):
        read_ct_source(tmp_path / "cts")


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"nowhere: not found; expected a prepared dataset"):
        read_ct_source(tmp_path / "nowhere")


@pytest.mark.parametrize("shape", [(20, 24), (20, 24, 12, 2)])
def test_a_volume_that_is_not_3d_is_refused_by_name(tmp_path: Path, shape: tuple[int, ...]) -> None:
    write_ct_folder(tmp_path / "cts", [0])
    bad = tmp_path / "cts" / "flat.nii"
    write_nifti(np.full(shape, -1000, dtype=np.int16), bad, tiny_affine())
    source = read_ct_source(tmp_path / "cts", val_fraction=0.5)
    case = next(c for c in [*source.split("train"), *source.split("val")] if c.label == str(bad))
    with pytest.raises(InputDataError, match=r"flat\.nii: not a 3D CT volume: loaded shape \(C, X, Y, Z\) = "):
        case.load()


def test_grid_cache_reuses_unchanged_volumes_and_rebuilds_a_modified_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_ct_folder(tmp_path / "cts", [0, 1, 2])
    memo, cache = tmp_path / "cache" / "digests.json", tmp_path / "cache"

    def cases() -> list[CtCase]:
        source = read_ct_source(tmp_path / "cts", 0.5, 0, memo)
        return sorted([*source.split("train"), *source.split("val")], key=lambda c: c.id)

    first = build_grid_cache(cases(), SIZE, FOV, 0.5, cache)
    assert not any(p.name in memo.read_text() for p in files)  # the memo keeps hashed paths only
    stamps = [g.ct_path.stat().st_mtime_ns for g in first]
    body = np.asarray(first[0].mask())
    assert 0 < body.sum() < body.size  # the body mask computed from the CT reached the grid

    hashed: list[Path] = []
    real = sha256_file
    monkeypatch.setattr("medxlate.io.provenance.sha256_file", lambda p: hashed.append(p) or real(p))
    second = build_grid_cache(cases(), SIZE, FOV, 0.5, cache)
    assert hashed == [] and [g.ct_path for g in second] == [g.ct_path for g in first]  # nothing re-read
    assert [g.ct_path.stat().st_mtime_ns for g in second] == stamps

    changed = np.full_like(phantom(1)[0], -1000)
    changed[4:16, 4:20, 2:10] = 500  # same size, new content, new mtime
    write_nifti(changed, files[1], tiny_affine())
    os.utime(files[1], ns=(files[1].stat().st_atime_ns, files[1].stat().st_mtime_ns + 10**9))
    third = build_grid_cache(cases(), SIZE, FOV, 0.5, cache)
    assert hashed == [files[1]]  # only the modified file is hashed again
    assert third[0].ct_path == first[0].ct_path and third[2].ct_path == first[2].ct_path
    assert third[1].ct_path != first[1].ct_path
    assert float(np.asarray(third[1].ct()).max()) == pytest.approx(500.0, abs=1.0)
    assert json.loads((third[1].ct_path.parent / "record.json").read_text())["spacing_mm"] == FOV / SIZE


def test_mhd_data_file_is_part_of_the_content(tmp_path: Path) -> None:
    import SimpleITK as sitk

    root = tmp_path / "cts"
    write_ct_folder(root, [0])
    image = sitk.GetImageFromArray(np.transpose(phantom(1)[0], (2, 1, 0)))
    image.SetSpacing((1.5, 1.25, 3.0))
    sitk.WriteImage(image, str(root / "vol.mhd"))
    key = {c.label: c.key for s in ("train", "val") for c in read_ct_source(root, 0.5).split(s)}[str(root / "vol.mhd")]
    raw = next(root.glob("vol.*raw"))
    raw.write_bytes(raw.read_bytes()[::-1])  # the header is unchanged, the voxels are not
    again = {c.label: c.key for s in ("train", "val") for c in read_ct_source(root, 0.5).split(s)}
    assert again[str(root / "vol.mhd")] != key


def test_prepared_dataset_keeps_its_splits(tmp_path: Path, paired_folder: Path) -> None:
    from medxlate.data.prepare import prepare_dataset

    prepare_dataset(paired_folder, tmp_path / "dataset")
    source = read_ct_source(tmp_path / "dataset", val_fraction=0.9)
    assert [c.id for c in source.split("train")] == ["case_000", "case_001"]
    assert [c.id for c in source.split("val")] == ["case_002"]
    ct, mask = source.split("val")[0].load()
    assert mask is not None and nib.load(source.split("val")[0].label).shape == tuple(ct.shape[1:])
