"""A finished run is never replaced silently; one training per output folder (issue 6, item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import ConfigError, FolderLockedError, OutputError
from medxlate.training import fit
from tests.conftest import tiny_config
from tests.lock_helpers import held_by_another_process


@pytest.fixture
def dataset(paired_folder: Path, tmp_path: Path) -> Path:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    return tmp_path / "dataset"


def test_rerun_into_a_finished_run_is_refused_unless_overwrite(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = fit(validate_config(tiny_config(dataset, run, epochs=1, decay_epochs=0)))
    checkpoint = first.checkpoint.read_bytes()
    with pytest.raises(
        OutputError,
        match=rf"train.output_dir {run}: already holds config.yaml, data_cache, last.pt, model.pt, val_montage.png"
        r" \(an earlier",
    ):
        fit(validate_config(tiny_config(dataset, run, epochs=1, decay_epochs=0, seed=1)))
    assert first.checkpoint.read_bytes() == checkpoint
    again = fit(validate_config(tiny_config(dataset, run, epochs=1, decay_epochs=0, seed=1, overwrite=True)))
    assert torch.load(again.checkpoint, weights_only=True)["config"]["train"]["seed"] == 1  # replaced, as asked


def test_overwrite_and_resume_exclude_each_other(dataset: Path, tmp_path: Path) -> None:
    raw = tiny_config(dataset, tmp_path / "run", overwrite=True, resume=str(tmp_path / "run" / "last.pt"))
    with pytest.raises(ConfigError, match="overwrite: true and resume exclude each other"):
        validate_config(raw)


def test_second_training_into_a_busy_folder_fails_at_once(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with held_by_another_process(run, "medxlate train tiny") as holder:
        with pytest.raises(FolderLockedError, match=rf"folder {run} is in use by process {holder.pid} "):
            fit(validate_config(tiny_config(dataset, run, epochs=1, decay_epochs=0)))
        assert sorted(p.name for p in run.iterdir()) == [".medxlate.lock"]


def test_output_folder_may_not_be_the_dataset(dataset: Path) -> None:
    with pytest.raises(OutputError, match=rf"train.output_dir {dataset}: it is the input {dataset} itself"):
        fit(validate_config(tiny_config(dataset, dataset, epochs=1, decay_epochs=0)))
