"""fingerprint_dataset: values against NumPy, determinism, the stored file and its hash."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medxlate.data.fingerprint import PERCENTILES, fingerprint_dataset, fingerprint_hash, load_fingerprint
from medxlate.data.prepare import run_prepare
from medxlate.errors import InputDataError


@pytest.fixture
def dataset(paired_folder: Path, tmp_path: Path) -> Path:
    run_prepare(paired_folder, tmp_path / "ds")
    return tmp_path / "ds"


def _role_arrays(root: Path, role: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images, masks = [], []
    for case in sorted((root / "cases").iterdir()):
        images.append(np.asarray(nib.load(case / f"{role}.nii.gz").dataobj, dtype=np.float64))
        masks.append(np.asarray(nib.load(case / "mask.nii.gz").dataobj) > 0)
    return images, masks


@pytest.mark.parametrize("role", ["source", "target"])
def test_values_match_numpy(dataset: Path, role: str) -> None:
    fingerprint = fingerprint_dataset(dataset)
    images, masks = _role_arrays(dataset, role)
    overall = np.concatenate([a.ravel() for a in images])
    inside = np.concatenate([a[m] for a, m in zip(images, masks, strict=True)])
    stats = fingerprint["roles"][role]
    for region, values in (("overall", overall), ("mask", inside)):
        got = stats["intensity"][region]
        expected = np.percentile(values, PERCENTILES)
        np.testing.assert_allclose([got[f"p{q:g}"] for q in PERCENTILES], expected, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(
            [got["mean"], got["std"], got["min"], got["max"]],
            [values.mean(), values.std(), values.min(), values.max()],
            rtol=1e-5,
            atol=1e-3,
        )
        assert got["voxels"] == values.size
    assert stats["spacing"] == {"median": [1.5, 1.25, 3.0], "min": [1.5, 1.25, 3.0], "max": [1.5, 1.25, 3.0]}
    assert stats["shape"]["median"] == [20.0, 24.0, 12.0]
    assert stats["orientation"] == {"LAS": 3} and stats["cases"] == 3
    assert fingerprint["splits"] == {"train": 2, "val": 1, "test": 0}


def test_deterministic_file_and_hash(dataset: Path) -> None:
    first = fingerprint_dataset(dataset)
    written = (dataset / "fingerprint.json").read_bytes()
    mtime = (dataset / "fingerprint.json").stat().st_mtime_ns
    assert fingerprint_dataset(dataset) == first
    assert (dataset / "fingerprint.json").read_bytes() == written
    assert (dataset / "fingerprint.json").stat().st_mtime_ns == mtime
    assert first["fingerprint_hash"] == fingerprint_hash(first) and len(first["fingerprint_hash"]) == 64
    assert load_fingerprint(dataset) == first


def test_subsampling_is_seeded(dataset: Path) -> None:
    a = fingerprint_dataset(dataset, samples_per_case=500, write=False)
    b = fingerprint_dataset(dataset, samples_per_case=500, write=False)
    assert a == b and a["fingerprint_hash"] != fingerprint_dataset(dataset, write=False)["fingerprint_hash"]


def test_load_fingerprint_absent_stale_or_edited(dataset: Path) -> None:
    assert load_fingerprint(dataset) is None
    fingerprint_dataset(dataset)
    index = json.loads((dataset / "dataset.json").read_text())
    index["cases"][0]["split"] = "val"
    (dataset / "dataset.json").write_text(json.dumps(index))
    assert load_fingerprint(dataset) is None  # describes the older dataset.json
    fingerprint = fingerprint_dataset(dataset)
    fingerprint["roles"]["source"]["intensity"]["overall"]["p50"] += 1.0
    (dataset / "fingerprint.json").write_text(json.dumps(fingerprint))
    with pytest.raises(InputDataError, match="does not match its fingerprint_hash"):
        load_fingerprint(dataset)
