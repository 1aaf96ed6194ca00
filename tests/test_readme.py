"""Every ```python block of README.md runs as written (so the documentation cannot rot).

The blocks run in order, in one namespace (like a notebook), in a temporary folder holding what
they name: ``ct.nii.gz``, ``mr.nii.gz`` and ``body_mask.nii.gz`` (a tiny LAS, anisotropic phantom),
a prepared ``my_dataset/`` and a copy of the repository's ``configs/``. The code itself is never
edited. The one concession to test time: ``mx.load_config`` is wrapped so the generator and
discriminator are tiny and epochs short (``TINY_MODEL``) and MLflow writes to a temporary store; every override the
block passes itself still applies on top, so what it asks for (e.g. ``train.epochs: 2`` with the
config's default schedule) is exactly what runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import medxlate
from medxlate.data.prepare import prepare_dataset
from tests.conftest import phantom, tiny_affine, write_nifti

REPO = Path(__file__).resolve().parents[1]
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
TINY_MODEL = {
    "model.generator_params": {"num_downs": 3, "ngf": 4},
    "model.discriminator_params": {"ndf": 4, "n_layers": 2},
    "train.max_steps_per_epoch": 2,
}


def readme_blocks(text: str) -> list[str]:
    """The bodies of the README's fenced ```python blocks, in order."""
    return [match.group(1) for match in PYTHON_BLOCK.finditer(text)]


def test_block_extraction_finds_every_python_block() -> None:
    text = "x\n```python\na = 1\n```\n```bash\nls\n```\n```python\nb = 2\nc = 3\n```\n"
    assert readme_blocks(text) == ["a = 1\n", "b = 2\nc = 3\n"]
    fences = len(re.findall(r"^```python", (REPO / "README.md").read_text(encoding="utf-8"), re.MULTILINE))
    assert len(readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))) == fences >= 1


def _write_inputs(folder: Path) -> None:
    ct, mr, body = phantom(5)
    write_nifti(ct, folder / "ct.nii.gz", tiny_affine())
    write_nifti(mr, folder / "mr.nii.gz", tiny_affine())
    write_nifti(body, folder / "body_mask.nii.gz", tiny_affine())
    shutil.copytree(REPO / "configs", folder / "configs")


def test_readme_python_blocks_run(paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _write_inputs(work)
    prepare_dataset(paired_folder, work / "my_dataset")
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    real_load_config = medxlate.load_config

    def load_tiny_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> medxlate.ExperimentConfig:
        return real_load_config(path, {**TINY_MODEL, **(overrides or {})})

    monkeypatch.setattr(medxlate, "load_config", load_tiny_config)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    for number, block in enumerate(readme_blocks((REPO / "README.md").read_text(encoding="utf-8")), start=1):
        code = compile(block, f"README.md python block {number}", "exec")
        exec(code, namespace)  # the README's own code, unedited
