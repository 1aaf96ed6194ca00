"""The registration benchmark's scoring, on the tiny fake sample (the real run takes minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks import registration
from tests.sample_data.test_misaligned import write_tiny_sample


def test_no_registration_scores_the_known_field_and_rigid_is_captured(tmp_path: Path) -> None:
    misalign = registration._misalign_module()
    variant = tmp_path / "variant"
    misalign.build_misaligned(write_tiny_sample(tmp_path / "sample"), variant, seed=5)
    cases = json.loads((variant / "manifest.json").read_text())["cases"]
    rows = registration.run_method("none", variant, cases, tmp_path / "work")
    rows += registration.run_method("rigid", variant, cases, tmp_path / "work")
    expected = sorted((m, c) for m in ("none", "rigid") for c in ("train_1", "train_2", "val_1"))
    assert sorted((r["method"], r["case"]) for r in rows) == expected  # one captured alignment per case
    by_case = {(r["method"], r["case"]): r for r in rows}
    assert by_case["none", "val_1"]["tre_max_mm"] == 0.0  # aligned truth, identity transform
    for case in (c for c in cases if c["split"] == "train"):
        row = by_case["none", case["id"]]
        field = np.asarray(nib.load(str(variant / case["misalignment"]["field"])).dataobj)[:, :, :, 0, :]
        body = np.asarray(nib.load(str(variant / case["files"]["mask"])).dataobj) > 0
        magnitude = np.linalg.norm(field, axis=-1)[body]
        # without registration the residual is the field itself (over the body voxels that land inside)
        assert magnitude.min() <= row["tre_mean_mm"] <= magnitude.max()
        assert row["tre_max_mm"] <= magnitude.max() + 1e-3
        assert 0 < row["voxels"] <= body.sum()
        assert by_case["rigid", case["id"]]["record"]["method"] == "rigid"
    summary = registration.summarise(rows + [{**r, "method": "deformable"} for r in rows if r["method"] == "rigid"])
    assert set(summary) == {"none", "rigid", "deformable"} and summary["none"]["mean_mm"] > 0
