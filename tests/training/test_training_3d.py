"""A tiny volumetric (3D) pix2pix training end to end: patches, sliding-window validation, checkpoint,
Translator on the input's grid, evaluate; bad patch sizes refused before any work."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import ConfigError
from medxlate.evaluation import evaluate
from medxlate.inference import Translator
from medxlate.io import load_volume
from medxlate.tracking import NullTracker
from medxlate.training import fit
from tests.conftest import tiny_affine, tiny_config


@pytest.fixture
def dataset(paired_folder: Path, tmp_path: Path) -> Path:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    return tmp_path / "dataset"


def config_3d(dataset: Path, output_dir: Path, patch: list[int], **train: object) -> dict:
    raw = tiny_config(dataset, output_dir, **{"epochs": 2, "decay_epochs": 1, **train})
    raw["data"] = {
        "dataset": str(dataset),
        "spatial_dims": 3,
        "patch_size": patch,
        "patches_per_volume": 2,
        "batch_size": 2,
        "flip_prob": 0.5,
    }
    raw["model"]["generator_params"] = {"num_downs": 2, "ngf": 4}
    raw["model"]["discriminator_params"] = {"ndf": 4, "n_layers": 1}
    raw["eval"] = {"roi_size": [16, 16, 8], "overlap": 0.25, "sw_batch_size": 2}
    return raw


def test_tiny_3d_training_end_to_end(dataset: Path, tmp_path: Path) -> None:
    # z patch 16 > the 12-slice volumes: padded with air (logged), not refused
    cfg = validate_config(config_3d(dataset, tmp_path / "run", [16, 16, 16]))
    tracker = NullTracker()
    result = fit(cfg, tracker)
    assert [step for step, _ in tracker.metrics["val/ssim_body"]] == [1, 2]
    assert [step for step, _ in tracker.metrics["train/loss_d"]] == [1, 3]  # first batch of each epoch
    assert all(np.isfinite(v) for v in result.metrics.values())
    content = torch.load(result.checkpoint, weights_only=True)
    assert content["generator_spec"]["spatial_dims"] == 3
    assert content["inference"]["kind"] == "sliding_window"
    assert list(content["inference"]["roi_size"]) == [16, 16, 8]
    assert any(t.ndim == 5 for t in content["generator"].values())  # 3D convolutions (B, C, X, Y, Z) kernels
    assert any(t.ndim == 5 for t in content["discriminator"].values())
    assert (tmp_path / "run" / "data_cache" / "cache.json").is_file()

    source = next((dataset / "cases").glob("*/source.nii.gz"))
    out = Translator.from_checkpoint(result.checkpoint, device="cpu").translate_file(source, tmp_path / "syn.nii.gz")
    written, original = nib.load(out), nib.load(source)
    assert written.shape == original.shape
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-5)
    np.testing.assert_allclose(original.affine, tiny_affine(), atol=1e-5)
    assert np.isfinite(np.asarray(written.dataobj)).all()
    assert load_volume(out).shape[1:] == original.shape

    summary = evaluate(result.checkpoint, dataset, tmp_path / "eval", split="val", device="cpu").summary
    torch.testing.assert_close(summary["ssim_body"], result.metrics["ssim_body"], rtol=1e-5, atol=1e-6)


def test_3d_training_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    first = fit(validate_config(config_3d(dataset, tmp_path / "a", [8, 8, 8], epochs=1, decay_epochs=0)))
    second = fit(validate_config(config_3d(dataset, tmp_path / "b", [8, 8, 8], epochs=1, decay_epochs=0)))
    a = torch.load(first.checkpoint, weights_only=True)["generator"]
    b = torch.load(second.checkpoint, weights_only=True)["generator"]
    for name, tensor in a.items():
        torch.testing.assert_close(tensor, b[name], rtol=0, atol=0)


def test_patch_not_a_multiple_of_the_generator_stride_is_refused(dataset: Path, tmp_path: Path) -> None:
    cfg = validate_config(config_3d(dataset, tmp_path / "run", [16, 10, 8]))
    with pytest.raises(ConfigError, match=r"data\.patch_size: \[16, 10, 8\] has a size that is not a multiple of 4"):
        fit(cfg)
    assert not (tmp_path / "run").exists()
