"""Translator: preprocessing rebuilt from the checkpoint, output on the input's grid, marked synthetic."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import CheckpointError
from medxlate.inference import Translator
from medxlate.io import load_volume
from medxlate.training import fit
from tests.conftest import tiny_affine, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:

    root = tmp_path_factory.mktemp("translator")
    pairs = _make_pairs(root)
    prepare_dataset(pairs, root / "dataset")
    result = fit(validate_config(tiny_config(root / "dataset", root / "run", epochs=1, decay_epochs=0)))
    return result.checkpoint, pairs


def _make_pairs(root: Path) -> Path:
    from tests.conftest import phantom, write_nifti

    pairs = root / "pairs"
    cases = []
    for number, split in enumerate(["train", "val"]):
        folder = pairs / f"p{number}"
        folder.mkdir(parents=True)
        ct, mr, mask = phantom(number)
        for name, array in (("ct", ct), ("mr", mr), ("mask", mask)):
            write_nifti(array, folder / f"{name}.nii.gz", tiny_affine())
        cases.append(
            {
                "id": f"p{number}",
                "split": split,
                "files": {
                    "source": f"p{number}/ct.nii.gz",
                    "target": f"p{number}/mr.nii.gz",
                    "mask": f"p{number}/mask.nii.gz",
                },
            }
        )
    (pairs / "manifest.json").write_text(json.dumps({"cases": cases}))
    return pairs


def test_output_overlays_input(trained: tuple[Path, Path]) -> None:
    checkpoint, pairs = trained
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    source = load_volume(pairs / "p1" / "ct.nii.gz")
    result = translator(source)
    assert result.shape == source.shape
    torch.testing.assert_close(result.affine.to(torch.float64), source.affine.to(torch.float64))
    assert torch.isfinite(result).all()
    # the generator ends in tanh, so outputs lie in [-1, 1], mapped exactly onto the reference range
    # (no resampling here: the input has the training spacing); measured: inside it to float rounding
    low, high = translator.preprocessing.target_range
    eps = 1e-5 * (high - low)
    assert low - eps <= float(result.min()) < float(result.max()) <= high + eps


def test_translate_file_writes_synthetic_nifti_with_provenance(trained: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, pairs = trained
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    out = translator.translate_file(pairs / "p1" / "ct.nii.gz", tmp_path / "out" / "syn.nii.gz")
    written = nib.load(str(out))
    source = nib.load(str(pairs / "p1" / "ct.nii.gz"))
    np.testing.assert_allclose(written.affine, source.affine, atol=1e-5)
    np.testing.assert_allclose(written.get_qform(), source.affine, atol=1e-5)
    assert written.shape == source.shape
    assert b"SYNTHETIC MR" in written.header["descrip"].tobytes()
    sidecar = json.loads((tmp_path / "out" / "syn.json").read_text())
    assert sidecar["synthetic"] is True and len(sidecar["source_sha256"]) == 64


def test_resampling_preprocessing_still_returns_input_grid(tmp_path: Path) -> None:
    root = tmp_path
    pairs = _make_pairs(root)
    prepare_dataset(pairs, root / "dataset")
    raw = tiny_config(root / "dataset", root / "run", epochs=1, decay_epochs=0)
    raw["data"]["pixdim"] = [2.0, 2.0, 3.0]
    checkpoint = fit(validate_config(raw)).checkpoint
    source = load_volume(pairs / "p1" / "ct.nii.gz")
    result = Translator.from_checkpoint(checkpoint, device="cpu")(source)
    assert result.shape == source.shape
    torch.testing.assert_close(result.affine.to(torch.float64), source.affine.to(torch.float64))


def test_from_checkpoint_rejects_non_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"state": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError):
        Translator.from_checkpoint(path)


def test_two_and_a_half_d_model_round_trip(tmp_path: Path) -> None:
    pairs = _make_pairs(tmp_path)
    prepare_dataset(pairs, tmp_path / "dataset")
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)
    raw["data"]["context_slices"] = 1
    checkpoint = fit(validate_config(raw)).checkpoint
    content = torch.load(checkpoint, weights_only=True)
    assert content["generator_spec"]["in_channels"] == 3
    assert content["preprocessing"]["context_slices"] == 1
    source = load_volume(pairs / "p1" / "ct.nii.gz")
    result = Translator.from_checkpoint(checkpoint, device="cpu")(source)
    assert result.shape == source.shape and torch.isfinite(result).all()


def test_checkpoint_records_the_slice_strategy_and_old_checkpoints_load_as_slices(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    from medxlate.checkpoint import save_checkpoint
    from medxlate.inference import SliceStrategy

    checkpoint, pairs = trained
    content = torch.load(checkpoint, weights_only=True)
    assert content["inference"] == {"context_slices": 0, "sw_batch_size": 8, "kind": "slices"}
    del content["inference"]  # as written before strategies were recorded
    old = save_checkpoint(content, tmp_path / "old.pt")
    source = load_volume(pairs / "p1" / "ct.nii.gz")
    old_translator = Translator.from_checkpoint(old, device="cpu")
    assert old_translator.strategy == SliceStrategy(context_slices=0, sw_batch_size=8)
    expected = Translator.from_checkpoint(checkpoint, device="cpu")(source)
    torch.testing.assert_close(old_translator(source).as_tensor(), expected.as_tensor(), rtol=0, atol=0)
