"""A finished run is never replaced silently; one training per output folder (issue 6, item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medxlate.checkpoint import load_checkpoint
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


def test_resume_without_last_pt_refuses_to_replace_a_finished_run(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = fit(validate_config(tiny_config(dataset, run, epochs=1, decay_epochs=0)))
    first.checkpoint.unlink()  # last.pt deleted to save space; model.pt is the run's result
    model = (run / "model.pt").read_bytes()
    with pytest.raises(
        OutputError,
        match=rf"train.output_dir {run}: --resume \(train.resume: latest\) found no last.pt to continue from, but "
        r"the folder holds config.yaml, model.pt, val_montage.png \(an earlier run\), which a fresh start would "
        r"replace; expected last.pt there, --resume-from CHECKPOINT .* or --overwrite without --resume",
    ):
        fit(validate_config(tiny_config(dataset, run, epochs=1, decay_epochs=0, resume="latest")))
    assert (run / "model.pt").read_bytes() == model
    assert not (run / "last.pt").exists()


@pytest.mark.parametrize("leftovers", [None, [".medxlate.lock", "data_cache", ".last.pt.0123456789abcdef.tmp"]])
def test_resume_with_nothing_to_resume_starts_afresh(
    dataset: Path, tmp_path: Path, leftovers: list[str] | None
) -> None:
    """A requeued job killed before its first checkpoint may always pass --resume (docs/training.md: starts afresh)."""
    run = tmp_path / "run"
    if leftovers is not None:  # None: the folder does not exist yet
        run.mkdir()
    for name in leftovers or []:
        if name == "data_cache":
            (run / name).mkdir()
        else:
            (run / name).write_bytes(b"")
    result = fit(validate_config(tiny_config(dataset, run, epochs=1, decay_epochs=0, resume="latest")))
    assert load_checkpoint(result.checkpoint)["step"] > 0 and (run / "model.pt").is_file()
    assert not (run / ".last.pt.0123456789abcdef.tmp").exists()
