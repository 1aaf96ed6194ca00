"""Inference on the model's training resolution: the spacing (and intensity / field-of-view ranges)
of the training data are recorded in the checkpoint; inputs are translated at the training spacing
and the result is put back onto the input's exact grid."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from medxlate.checkpoint import load_checkpoint, save_checkpoint
from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.inference import Translator
from medxlate.io import load_volume
from medxlate.training import fit
from medxlate.transforms import Preprocessing, TrainingDomain
from tests.conftest import phantom, tiny_config, write_nifti

COARSE = np.array([[-2.0, 0, 0, 40.0], [0, 2.0, 0, -25.0], [0, 0, 3.0, 60.0], [0, 0, 0, 1]])  # LAS, 2 mm in-plane
FINE = np.array([[-1.0, 0, 0, 40.0], [0, 1.0, 0, -25.0], [0, 0, 3.0, 60.0], [0, 0, 0, 1]])  # same origin, 1 mm


def upsample_in_plane(array: np.ndarray) -> np.ndarray:
    """Linear interpolation onto the grid with half the in-plane spacing and the same first voxel:
    (X, Y, Z) -> (2X - 1, 2Y - 1, Z); even indices are the original voxels."""
    out = array.astype(np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        coords = np.arange(2 * n - 1) / 2.0
        out = np.apply_along_axis(lambda line, c=coords, k=n: np.interp(c, np.arange(k), line), axis, out)
    return out


@pytest.fixture(scope="module")
def trained_on_2mm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("spacing")
    pairs = root / "pairs"
    cases = []
    for number, split in enumerate(["train", "val"]):
        folder = pairs / f"p{number}"
        folder.mkdir(parents=True)
        for name, array in zip(("ct", "mr", "mask"), phantom(number), strict=True):
            write_nifti(array, folder / f"{name}.nii.gz", COARSE)
        files = {
            role: f"p{number}/{name}.nii.gz" for role, name in (("source", "ct"), ("target", "mr"), ("mask", "mask"))
        }
        cases.append({"id": f"p{number}", "split": split, "files": files})
    (pairs / "manifest.json").write_text(json.dumps({"cases": cases}))
    prepare_dataset(pairs, root / "dataset")
    checkpoint = fit(validate_config(tiny_config(root / "dataset", root / "run", epochs=1, decay_epochs=0))).checkpoint
    ct, _, _ = phantom(1)
    write_nifti(upsample_in_plane(ct).astype(np.float32), root / "fine_ct.nii.gz", FINE)
    return checkpoint, root


def test_checkpoint_records_the_training_domain(trained_on_2mm: tuple[Path, Path]) -> None:
    checkpoint, _ = trained_on_2mm
    record = load_checkpoint(checkpoint)["preprocessing"]
    assert record["version"] == 2 and record["pixdim"] is None
    domain = TrainingDomain.from_dict(record["domain"])
    assert domain.spacing_median == domain.spacing_min == domain.spacing_max == (2.0, 2.0, 3.0)
    assert domain.fov_min == domain.fov_max == (40.0, 48.0, 36.0)  # 20 x 24 x 12 voxels, RAS order
    ct, _, _ = phantom(0)
    clipped = np.clip(ct.astype(np.float64), -1024.0, 3071.0)
    expected = np.percentile(clipped, [0.5, 99.5])  # one training volume: its own percentiles
    assert_close(
        torch.tensor(domain.source_percentiles, dtype=torch.float64), torch.from_numpy(expected), atol=0.01, rtol=0
    )


def test_fine_input_is_translated_at_the_training_spacing(trained_on_2mm: tuple[Path, Path]) -> None:
    checkpoint, root = trained_on_2mm
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    coarse = load_volume(root / "pairs" / "p1" / "ct.nii.gz")
    fine = load_volume(root / "fine_ct.nii.gz")
    assert fine.shape == (1, 39, 47, 12)
    # the generator's output: the body masks of the two grids differ on the rim (each its own voxels)
    out_coarse = translator(coarse, fill_background=False)
    out_fine = translator(fine, fill_background=False)
    assert out_fine.shape == fine.shape
    assert_close(out_fine.affine.to(torch.float64), torch.as_tensor(FINE))  # exactly the input's grid
    expected = torch.from_numpy(upsample_in_plane(out_coarse[0].numpy())).float()
    assert float(out_coarse.max() - out_coarse.min()) > 10.0  # not a constant image (one tiny epoch: ~20)
    # measured: 6e-5 (float32 rounding at values ~700); translating the fine grid as it is (the old
    # behaviour) differs by up to 19.6 from the coarse result
    assert_close(out_fine[0].as_tensor(), expected, atol=1e-3, rtol=0)


def test_old_checkpoint_without_domain_loads_and_keeps_the_input_spacing(
    trained_on_2mm: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint, root = trained_on_2mm
    content = load_checkpoint(checkpoint)
    old = {k: v for k, v in content["preprocessing"].items() if k != "domain"}
    content["preprocessing"] = {**old, "version": 1}
    old_path = save_checkpoint(
        {k: v for k, v in content.items() if k not in ("format", "version")}, tmp_path / "old.pt"
    )
    with caplog.at_level(logging.WARNING):
        translator = Translator.from_checkpoint(old_path, device="cpu")
    assert translator.preprocessing.domain is None
    assert any("records no training spacing" in r.getMessage() for r in caplog.records)
    fine = load_volume(root / "fine_ct.nii.gz")
    assert translator.preprocessing.inference_spacing(fine, through_plane=False) is None
    assert translator(fine).shape == fine.shape


def test_newer_record_version_is_refused() -> None:
    from medxlate.errors import CheckpointError

    record = Preprocessing((-1024.0, 3071.0), (0.5, 99.5)).to_dict()
    with pytest.raises(CheckpointError, match=r"version 3; this medxlate reads up to 2"):
        Preprocessing.from_dict({**record, "version": 3})


def test_spacing_rule() -> None:
    domain = TrainingDomain(
        (0.8, 0.8, 2.5), (0.7, 0.7, 2.0), (0.9, 0.9, 3.0), (-1000.0, 1000.0), (300.0,) * 3, (400.0,) * 3
    )

    def affine(x: float, y: float, z: float) -> np.ndarray:
        return np.diag([-x, y, z, 1.0])

    assert domain.inference_spacing(affine(0.7, 0.9, 5.0), through_plane=False) is None  # in range; z ignored
    assert domain.inference_spacing(affine(0.5, 0.9, 5.0), through_plane=False) == (0.8, 0.9, 5.0)
    assert domain.inference_spacing(affine(0.7, 0.9, 5.0), through_plane=True) == (0.7, 0.9, 2.5)
    # voxel axes in another order (sagittal storage: voxel axes are A, S, R): spacing follows RAS axes
    sagittal = np.array([[0, 0, 2.0, 0], [0.75, 0, 0, 0], [0, 0.75, 0, 0], [0, 0, 0, 1.0]])
    assert domain.inference_spacing(sagittal, through_plane=True) == (0.8, 0.75, 2.5)


def test_unfamiliar_inputs_are_warned_about(
    trained_on_2mm: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint, root = trained_on_2mm
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    domain = translator.preprocessing.domain
    assert domain is not None
    ct = load_volume(root / "pairs" / "p1" / "ct.nii.gz")
    assert domain.warn_if_unfamiliar(ct, ct.affine, (-1024.0, 3071.0)) == []  # like the training data
    fine = load_volume(root / "fine_ct.nii.gz")
    assert domain.warn_if_unfamiliar(fine, fine.affine, (-1024.0, 3071.0)) == []  # same body, finer grid
    mr = load_volume(root / "pairs" / "p1" / "mr.nii.gz")  # an MR given to a CT model
    with caplog.at_level(logging.WARNING):
        translator(mr)
    messages = [r.getMessage() for r in caplog.records]
    assert (
        len(messages) == 1 and "input intensities p0.5..p99.5" in messages[0] and "far from the training" in messages[0]
    )
    wide = ct.clone()
    wide.affine = torch.as_tensor(np.diag([-10.0, 10.0, 3.0, 1.0]))  # 200 x 240 mm vs 40 x 48 mm
    warnings = domain.warn_if_unfamiliar(wide, wide.affine, (-1024.0, 3071.0))
    assert len(warnings) == 1 and "field of view 200 x 240 mm" in warnings[0]
