"""X-ray -> CT straight from a folder of CT volumes (NIfTI files, a DICOM tree): train, evaluate, translate."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import pytest

from medxlate.config import validate_config
from medxlate.data.ct_source import read_ct_source
from medxlate.errors import ConfigError, InputDataError
from medxlate.evaluation import evaluate
from medxlate.pipeline import _translate
from medxlate.training import fit
from medxlate.training.lift import DIGEST_MEMO, read_lift_source
from tests.data.test_ct_folder import _dicom_tree, write_ct_folder
from tests.training.test_lift import _xray_config


def _train_and_check(folder: Path, tmp_path: Path, val_fraction: float) -> None:
    """One tiny epoch on ``folder``; validation covers its val split; evaluate reproduces it."""
    raw = _xray_config(folder, tmp_path / "run", items_per_volume=1, val_fraction=val_fraction)
    trained = fit(validate_config(raw))
    source = read_ct_source(folder, val_fraction, 0)
    val_ids = [case.id for case in source.split("val")]
    assert list(trained.per_case) == val_ids and 1 <= len(val_ids) < 3
    entries = list((tmp_path / "run" / "data_cache").glob("xray_grid_*/*/record.json"))
    assert len(entries) == 3  # every volume on the model grid, once
    result = evaluate(trained.checkpoint, folder, tmp_path / "eval", split="val", device="cpu")
    assert result.per_case.keys() == trained.per_case.keys()
    for case_id, values in trained.per_case.items():  # a checkpoint scores the folder as it validated on it
        scored = result.per_case[case_id]  # plus the synthetic CT's bone/air Dice and HD95, which validation skips
        assert {k: scored[k] for k in values} == pytest.approx(values, rel=1e-5, abs=1e-5)
        assert list(scored)[len(values) :] == ["dice_bone", "hd95_bone", "dice_air", "hd95_air"]
    written = _translate(trained.checkpoint, folder, tmp_path / "translated", "val")
    assert [p.name for p in written] == [f"{case_id}_synthetic_ct.nii.gz" for case_id in val_ids]
    assert nib.load(str(written[0])).shape == (16, 16, 16)
    with pytest.raises(InputDataError, match=r"split 'test' has no case to evaluate; splits with cases: train, val"):
        evaluate(trained.checkpoint, folder, tmp_path / "eval_test", split="test", device="cpu")


def test_xray_trains_and_evaluates_on_a_nifti_folder(tmp_path: Path) -> None:
    write_ct_folder(tmp_path / "cts", [0, 1, 2])
    _train_and_check(tmp_path / "cts", tmp_path, val_fraction=0.4)
    assert (tmp_path / "run" / "data_cache" / DIGEST_MEMO).is_file()


def test_xray_trains_and_evaluates_on_a_dicom_tree(tmp_path: Path) -> None:
    _dicom_tree(tmp_path / "tree")
    _train_and_check(tmp_path / "tree", tmp_path, val_fraction=0.5)


def test_a_prepared_dataset_warns_that_val_fraction_is_for_folders(
    tmp_path: Path, paired_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from medxlate.data.prepare import prepare_dataset

    prepare_dataset(paired_folder, tmp_path / "dataset")
    caplog.set_level(logging.WARNING)
    source = read_lift_source(validate_config(_xray_config(tmp_path / "dataset", tmp_path / "run")))
    assert [c.id for c in source.split("val")] == ["case_002"] and not caplog.records
    cfg = validate_config(_xray_config(tmp_path / "dataset", tmp_path / "run", val_fraction=0.5))
    assert [c.id for c in read_lift_source(cfg).split("val")] == ["case_002"]
    assert "xray.val_fraction apply to a folder of CT volumes only" in caplog.text


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_val_fraction_must_leave_both_splits(tmp_path: Path, fraction: float) -> None:
    with pytest.raises(ConfigError, match="val_fraction"):
        validate_config(_xray_config(tmp_path / "cts", tmp_path / "run", val_fraction=fraction))
