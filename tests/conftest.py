"""Shared fixtures: a tiny synthetic paired CT/MR dataset with a non-identity (LAS, anisotropic) affine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

TINY_SHAPE = (20, 24, 12)


def tiny_affine() -> np.ndarray:
    """LAS orientation (x flipped), anisotropic spacing, non-zero origin."""
    affine = np.diag([-1.5, 1.25, 3.0, 1.0])
    affine[:3, 3] = [40.0, -25.0, 60.0]
    return affine


def phantom(seed: int, shape: tuple[int, int, int] = TINY_SHAPE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CT (HU), MR (arbitrary units) and body mask of an ellipse 'torso' with fat, lungs and a spine."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    shift = 0.05 * rng.standard_normal(2)
    r = ((x - shift[0]) / 0.85) ** 2 + ((y - shift[1]) / 0.7) ** 2
    ct = np.full(shape, -1000.0)
    body = r < 1.0
    ct[body] = -100.0  # fat
    ct[r < 0.7] = 40.0  # muscle / organs
    lungs = (((np.abs(x) - 0.35) / 0.22) ** 2 + (y / 0.35) ** 2 < 1.0) & (z > -0.5)
    ct[lungs] = -820.0
    spine = ((x / 0.12) ** 2 + ((y + 0.45) / 0.12) ** 2) < 1.0
    ct[spine] = 700.0
    ct += 8.0 * rng.standard_normal(shape)
    mr = np.zeros(shape)
    mr[body] = 1400.0
    mr[r < 0.7] = 600.0
    mr[lungs] = 60.0
    mr[spine] = 120.0
    mr = np.abs(mr + 20.0 * rng.standard_normal(shape))
    return ct.astype(np.int16), mr.astype(np.float32), body.astype(np.uint8)


def write_nifti(array: np.ndarray, path: Path, affine: np.ndarray) -> None:
    """Write with nibabel directly (independent of medxlate's writer)."""
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, str(path))


@pytest.fixture
def paired_folder(tmp_path: Path) -> Path:
    """A folder of paired volumes with manifest.json: two train cases and one val case."""
    return write_paired_folder(tmp_path / "pairs")


def write_paired_folder(root: Path) -> Path:
    """Write the :func:`paired_folder` content into ``root`` (for module-scoped fixtures)."""
    cases = []
    for number, split in enumerate(["train", "train", "val"]):
        folder = root / f"patient_{number}"
        folder.mkdir(parents=True)
        ct, mr, mask = phantom(number)
        write_nifti(ct, folder / "ct.nii.gz", tiny_affine())
        write_nifti(mr, folder / "mr.nii.gz", tiny_affine())
        write_nifti(mask, folder / "mask.nii.gz", tiny_affine())
        cases.append(
            {
                "id": f"patient_{number}",
                "split": split,
                "files": {
                    "source": f"patient_{number}/ct.nii.gz",
                    "target": f"patient_{number}/mr.nii.gz",
                    "mask": f"patient_{number}/mask.nii.gz",
                },
            }
        )
    (root / "manifest.json").write_text(json.dumps({"name": "tiny", "cases": cases}))
    return root


def tiny_config(dataset: Path, output_dir: Path, **train: object) -> dict:
    """Raw config dict for a seconds-long CPU training run."""
    return {
        "name": "tiny",
        "data": {"dataset": str(dataset), "batch_size": 4},
        "model": {
            "generator": "unet",
            "generator_params": {"num_downs": 3, "ngf": 4},
            "discriminator": "patchgan",
            "discriminator_params": {"ndf": 4, "n_layers": 2},
        },
        "train": {"epochs": 2, "decay_epochs": 1, "output_dir": str(output_dir), "seed": 0, **train},
        "tracking": {"backend": "none"},
    }


@pytest.fixture(scope="session")
def cli_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-epoch checkpoint and the source CT of its validation case (CLI tests)."""
    from medxlate.config import validate_config
    from medxlate.data.prepare import prepare_dataset
    from medxlate.training import fit
    from tests.inference.test_translator import _make_pairs

    root = tmp_path_factory.mktemp("cli_errors")
    pairs = _make_pairs(root)
    prepare_dataset(pairs, root / "dataset")
    result = fit(validate_config(tiny_config(root / "dataset", root / "run", epochs=1, decay_epochs=0)))
    return result.checkpoint, pairs / "p1" / "ct.nii.gz"


@pytest.fixture(scope="session")
def dciodvfy() -> str:
    """Path of dicom3tools' validator, installed with apt-get where missing (root only)."""
    found = shutil.which("dciodvfy")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "dicom3tools"], capture_output=True, timeout=300)
        found = shutil.which("dciodvfy")
    if found is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed and cannot be installed here")
    return found
