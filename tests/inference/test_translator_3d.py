"""3D models through the Translator and `evaluate`: sliding windows, the input's grid and affine."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medxlate.checkpoint import save_checkpoint
from medxlate.data.bodymask import body_mask_from_ct
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import CheckpointError
from medxlate.evaluation import evaluate
from medxlate.inference import SliceStrategy, SlidingWindowStrategy, Translator, strategy_to_dict
from medxlate.io import load_volume
from medxlate.models import build_generator
from medxlate.transforms import Preprocessing
from tests.conftest import phantom, tiny_affine, write_nifti
from tests.inference.test_strategy import Pointwise
from tests.inference.test_translator import _make_pairs

WINDOW = (-1024.0, 3071.0)
TARGET_RANGE = (50.0, 1500.0)
SPEC_3D = {"name": "unet", "spatial_dims": 3, "in_channels": 1, "out_channels": 1, "params": {"num_downs": 2, "ngf": 4}}


def _preprocessing(divisible: int) -> Preprocessing:
    return Preprocessing(WINDOW, (0.5, 99.5), target_range=TARGET_RANGE, divisible=divisible)


def write_3d_checkpoint(path: Path, strategy: SlidingWindowStrategy | None = None) -> Path:
    """A 3D checkpoint as training writes it (random weights, seeded)."""
    torch.manual_seed(0)
    generator = build_generator(**{k: v for k, v in SPEC_3D.items() if k != "params"}, **SPEC_3D["params"])
    strategy = strategy or SlidingWindowStrategy(roi_size=(16, 16, 8), overlap=0.25, sw_batch_size=2)
    payload = {
        "generator": generator.state_dict(),
        "generator_spec": SPEC_3D,
        "preprocessing": _preprocessing(4).to_dict(),
        "inference": strategy_to_dict(strategy),
        "target_modality": "MR",
    }
    return save_checkpoint(payload, path)


def _expected_pointwise(ct_hu: np.ndarray) -> np.ndarray:
    """What a voxel-wise network gives on the input's own voxel order, computed without medxlate."""
    unit = np.clip((ct_hu - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0, 1) * 2 - 1
    out = np.tanh(0.7 * unit + 0.1)
    return (out + 1) * 0.5 * (TARGET_RANGE[1] - TARGET_RANGE[0]) + TARGET_RANGE[0]


@pytest.mark.parametrize(
    "strategy",
    [SlidingWindowStrategy(roi_size=(16, 16, 8), overlap=0.5), SliceStrategy(context_slices=1)],
    ids=["sliding_window", "slices"],
)
def test_output_is_voxel_aligned_with_a_flipped_anisotropic_input(
    strategy: SlidingWindowStrategy | SliceStrategy, tmp_path: Path
) -> None:
    ct, _, _ = phantom(0)
    write_nifti(ct, tmp_path / "ct.nii.gz", tiny_affine())  # LAS, 1.5 x 1.25 x 3 mm
    translator = Translator(Pointwise(), _preprocessing(8), device="cpu", strategy=strategy)
    out = translator.translate_file(tmp_path / "ct.nii.gz", tmp_path / "syn.nii.gz")
    written = nib.load(str(out))
    np.testing.assert_allclose(written.affine, tiny_affine(), atol=1e-5)
    body = body_mask_from_ct(ct.astype(np.float64))  # outside it: the target's background (task ct2mr's rule)
    expected = np.where(body, _expected_pointwise(ct.astype(np.float64)), TARGET_RANGE[0])
    np.testing.assert_allclose(written.get_fdata(), expected, rtol=1e-5, atol=1e-3)


def test_3d_checkpoint_translates_onto_the_input_grid(tmp_path: Path) -> None:
    checkpoint = write_3d_checkpoint(tmp_path / "model.pt")
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    assert translator.strategy == SlidingWindowStrategy(roi_size=(16, 16, 8), overlap=0.25, sw_batch_size=2)
    ct, _, _ = phantom(1)  # (20, 24, 12): not multiples of 8 along X and Z
    write_nifti(ct, tmp_path / "ct.nii.gz", tiny_affine())
    source = load_volume(tmp_path / "ct.nii.gz")
    result = translator(source)
    assert result.shape == source.shape
    torch.testing.assert_close(result.affine.to(torch.float64), source.affine.to(torch.float64))
    # the same physical image stored RAS (x flipped) translates to the same physical result
    ras_affine = tiny_affine() @ np.diag([-1.0, 1.0, 1.0, 1.0])
    ras_affine[0, 3] = tiny_affine()[0, 3] - 1.5 * (ct.shape[0] - 1)
    write_nifti(ct[::-1].copy(), tmp_path / "ct_ras.nii.gz", ras_affine)
    flipped = translator(load_volume(tmp_path / "ct_ras.nii.gz"))
    torch.testing.assert_close(flipped.as_tensor().flip(1), result.as_tensor(), rtol=0, atol=0)
    assert torch.isfinite(result).all()


def test_sw_batch_size_override_keeps_the_result(tmp_path: Path) -> None:
    checkpoint = write_3d_checkpoint(tmp_path / "model.pt")
    source = load_volume(_write_phantom_ct(tmp_path))
    one = Translator.from_checkpoint(checkpoint, device="cpu")
    many = Translator(one.generator, one.preprocessing, device="cpu", strategy=one.strategy, sw_batch_size=7)
    assert many.strategy.sw_batch_size == 7
    torch.testing.assert_close(many(source).as_tensor(), one(source).as_tensor(), rtol=1e-5, atol=1e-4)


def _write_phantom_ct(folder: Path) -> Path:
    ct, _, _ = phantom(2)
    write_nifti(ct, folder / "ct.nii.gz", tiny_affine())
    return folder / "ct.nii.gz"


def test_checkpoint_whose_strategy_does_not_fit_its_generator_is_refused(tmp_path: Path) -> None:
    payload = torch.load(write_3d_checkpoint(tmp_path / "model.pt"), weights_only=True)
    payload["inference"] = strategy_to_dict(SliceStrategy())
    save_checkpoint(payload, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="'slices' needs a 2D generator, the checkpoint holds a 3D one"):
        Translator.from_checkpoint(tmp_path / "mixed.pt", device="cpu")
    payload["inference"] = {"kind": "sliding_window", "roi_size": [8, 8], "overlap": 0.5}
    save_checkpoint(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="roi_size"):
        Translator.from_checkpoint(tmp_path / "bad.pt", device="cpu")


def test_evaluate_works_unchanged_for_a_3d_model(tmp_path: Path) -> None:
    pairs = _make_pairs(tmp_path)
    prepare_dataset(pairs, tmp_path / "dataset")
    checkpoint = write_3d_checkpoint(tmp_path / "model.pt")

    result = evaluate(checkpoint, tmp_path / "dataset", tmp_path / "eval", device="cpu")

    assert len(result.per_case) == 1
    values = next(iter(result.per_case.values()))
    assert {"ssim", "psnr", "mae", "ssim_body", "psnr_body", "mae_body"} <= values.keys()
    assert all(np.isfinite(v) for v in values.values())
    summary = json.loads(result.summary_path.read_text())
    assert summary["cases"] == 1 and summary["mean"]["mae"] == pytest.approx(values["mae"])
