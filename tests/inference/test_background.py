"""Outside the input's body a translation is the target's background, as the task's body rule says."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from medxlate.data.prepare import prepare_dataset
from medxlate.errors import CheckpointError
from medxlate.evaluation import evaluate
from medxlate.inference import SlidingWindowStrategy, Translator
from medxlate.io import load_volume
from medxlate.metrics.volume import volume_metrics
from medxlate.tasks import Task, get_task
from tests.conftest import tiny_affine, write_nifti
from tests.inference.test_strategy import Pointwise
from tests.inference.test_translator import _make_pairs
from tests.inference.test_translator_3d import TARGET_RANGE, _expected_pointwise, _preprocessing, write_3d_checkpoint

BACKGROUND = TARGET_RANGE[0]  # the model's air (-1) mapped back: the low end of the MR reference range
STRATEGY = SlidingWindowStrategy(roi_size=(16, 16, 8), overlap=0.25)


def _body_ct(folder: Path, air_only: bool = False) -> tuple[Path, np.ndarray, np.ndarray]:
    """A (32, 28, 8) CT: an elliptic body (40 HU) with a lung (-850 HU) in air (-1000 HU), stored LAS."""
    x, y = np.meshgrid(np.arange(32) - 15.5, np.arange(28) - 13.5, indexing="ij")
    body = np.repeat((((x / 12) ** 2 + (y / 10) ** 2) < 1)[..., None], 8, axis=2) & (not air_only)
    lung = np.repeat(((((x - 5) / 3) ** 2 + (y / 4) ** 2) < 1)[..., None], 8, axis=2) & body
    ct = np.where(body, 40.0, -1000.0) + 5.0 * np.random.default_rng(0).standard_normal(body.shape)
    ct[lung] = -850.0
    write_nifti(ct.astype(np.int16), folder / "ct.nii.gz", tiny_affine())
    return folder / "ct.nii.gz", ct.astype(np.int16).astype(np.float64), body


def test_air_outside_the_body_is_written_as_the_target_background(tmp_path: Path) -> None:
    path, ct, body = _body_ct(tmp_path)
    translator = Translator(Pointwise(), _preprocessing(8), device="cpu", strategy=STRATEGY)
    written = nib.load(str(translator.translate_file(path, tmp_path / "syn.nii.gz")))
    output, expected = written.get_fdata(), _expected_pointwise(ct)
    np.testing.assert_allclose(written.affine, tiny_affine(), atol=1e-5)
    assert np.all(output[~body] == BACKGROUND)  # without the rule: ~386, what the network makes of air
    inside = ndimage.binary_erosion(body, np.ones((3, 3, 1), dtype=bool))  # the mask's opening may trim the rim
    np.testing.assert_allclose(output[inside], expected[inside], rtol=1e-5, atol=1e-3)  # the lung included
    raw = translator(load_volume(path), fill_background=False)
    np.testing.assert_allclose(raw[0].numpy(), expected, rtol=1e-5, atol=1e-3)  # the generator's output everywhere
    filled = translator(load_volume(path))
    assert filled.meta.keys() == raw.meta.keys()  # the rule changes voxels, not what the result says of itself


def test_a_task_without_a_body_rule_keeps_the_translation(tmp_path: Path) -> None:
    path, ct, _ = _body_ct(tmp_path)
    prep = _preprocessing(8)
    prep = replace(prep, task=replace(prep.task, source_body_threshold=None))
    output = Translator(Pointwise(), prep, device="cpu", strategy=STRATEGY)(load_volume(path))
    np.testing.assert_allclose(output[0].numpy(), _expected_pointwise(ct), rtol=1e-5, atol=1e-3)


def test_an_input_without_a_body_keeps_its_translation_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, ct, _ = _body_ct(tmp_path, air_only=True)
    translator = Translator(Pointwise(), _preprocessing(8), device="cpu", strategy=STRATEGY)
    with caplog.at_level(logging.WARNING, logger="medxlate.inference.background"):
        output = translator(load_volume(path))
    np.testing.assert_allclose(output[0].numpy(), _expected_pointwise(ct), rtol=1e-5, atol=1e-3)
    assert "no body found (no voxel above -500 HU); the translation is kept everywhere" in caplog.text


def test_evaluate_scores_the_generator_output_not_the_background_rule(tmp_path: Path) -> None:
    pairs = _make_pairs(tmp_path)
    prepare_dataset(pairs, tmp_path / "dataset")
    checkpoint = write_3d_checkpoint(tmp_path / "model.pt")
    scores = next(iter(evaluate(checkpoint, tmp_path / "dataset", tmp_path / "eval", device="cpu").per_case.values()))
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    source, target = load_volume(pairs / "p1" / "ct.nii.gz"), load_volume(pairs / "p1" / "mr.nii.gz")
    mask = load_volume(pairs / "p1" / "mask.nii.gz")[0] > 0.5
    raw = translator(source, fill_background=False)[0].as_tensor()
    expected = volume_metrics(raw, target[0].as_tensor(), mask, translator.preprocessing.target_data_range)
    assert scores["mae"] == pytest.approx(expected["mae"], rel=1e-6)
    filled = translator(source)[0].as_tensor()
    assert not torch.equal(filled, raw) and bool(((filled == raw) | (filled == BACKGROUND)).all())


def test_task_records_carry_the_body_rule_and_old_records_take_the_registered_one() -> None:
    ct2mr, mr2ct = get_task("ct2mr"), get_task("mr2ct")
    assert (ct2mr.source_body_threshold, mr2ct.source_body_threshold) == (-500.0, None)
    assert get_task("xray2ct").source_body_threshold is None
    assert Task.from_dict(ct2mr.to_dict()) == ct2mr
    for task in (ct2mr, mr2ct):  # written before the field existed
        old = {k: v for k, v in task.to_dict().items() if k != "source_body_threshold"}
        assert Task.from_dict(old) == task
    for bad in ("-500", True, float("nan")):
        with pytest.raises(CheckpointError, match=r"source_body_threshold .*; expected a finite number or null"):
            Task.from_dict({**ct2mr.to_dict(), "source_body_threshold": bad})
