"""MR -> CT as a task record: tiny training + translation end to end, the task registry, checkpoint records."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medxlate.checkpoint import load_checkpoint, save_checkpoint
from medxlate.config import validate_config
from medxlate.data import read_dataset
from medxlate.data.prepare import prepare_dataset
from medxlate.data.roles import orient_dataset
from medxlate.errors import CheckpointError, ConfigError, InputDataError, RegistryError
from medxlate.evaluation import evaluate
from medxlate.inference import Translator
from medxlate.io import load_volume
from medxlate.tasks import Task, get_task
from medxlate.tracking import NullTracker
from medxlate.training import fit
from medxlate.transforms import Preprocessing
from tests.conftest import tiny_affine, tiny_config

WINDOW = (-1000.0, 1000.0)


def _mr2ct_config(dataset: Path, out: Path) -> dict:
    raw = tiny_config(dataset, out, epochs=1, decay_epochs=0)
    raw["data"].update({"task": "mr2ct", "source_window": list(WINDOW)})
    return raw


def test_mr2ct_trains_and_translates_mr_to_hu_on_the_input_grid(paired_folder: Path, tmp_path: Path) -> None:
    prepare_dataset(paired_folder, tmp_path / "dataset")  # the dataset holds CT as source, MR as target
    result = fit(validate_config(_mr2ct_config(tmp_path / "dataset", tmp_path / "run")), NullTracker())
    content = load_checkpoint(result.checkpoint)
    assert content["preprocessing"]["task"] == get_task("mr2ct").to_dict()
    assert (content["source_modality"], content["target_modality"]) == ("MR", "CT")
    assert content["preprocessing"]["target_range"] == list(WINDOW)  # a CT target's own range is its window
    # validation compares in HU with the window width as data range
    (case_id,) = result.per_case  # the one val case (patient_2; ids are opaque after prepare)
    assert result.per_case[case_id]["data_range"] == pytest.approx(2000.0)

    translator = Translator.from_checkpoint(result.checkpoint, device="cpu")
    assert translator.target_modality == "CT" and translator.description.startswith("SYNTHETIC CT")
    mr_path = paired_folder / "patient_2" / "mr.nii.gz"
    mr = load_volume(mr_path)
    # the model's input is the MR, scaled by its own p0.5/p99.5 (NumPy here)
    low, high = np.percentile(nib.load(mr_path).get_fdata(), [0.5, 99.5])
    unit = translator.preprocessing.source_to_model(mr)
    expected_min = (float(mr.min()) - low) * 2.0 / (high - low) - 1.0
    torch.testing.assert_close(float(unit.min()), expected_min, rtol=1e-5, atol=1e-5)

    out = translator.translate_file(mr_path, tmp_path / "sct.nii.gz")
    image = nib.load(out)
    np.testing.assert_allclose(image.affine, tiny_affine(), atol=1e-5)  # the MR's LAS anisotropic grid
    hu = image.get_fdata()
    assert hu.shape == mr.shape[1:]
    assert WINDOW[0] <= hu.min() and hu.max() <= WINDOW[1]  # the inverted CT window: HU inside it
    assert hu.max() - hu.min() > 1.0  # not a constant volume
    assert image.header["descrip"].tobytes().decode().startswith("SYNTHETIC CT")
    direct = translator(mr)[0].numpy()
    np.testing.assert_allclose(hu, direct, atol=0.5)  # NIfTI output is the translation (float storage)

    # validation compares with the real CT as the model sees it (clipped to the window); evaluation, which
    # reads the dataset's roles as the task does, with the raw CT (NumPy MAE here)
    ct = nib.load(paired_folder / "patient_2" / "ct.nii.gz").get_fdata()
    mae_clipped = np.abs(direct - np.clip(ct, *WINDOW)).mean()
    assert result.per_case[case_id]["mae"] == pytest.approx(mae_clipped, rel=1e-4)
    evaluated = evaluate(result.checkpoint, tmp_path / "dataset", tmp_path / "eval", device="cpu", report=False)
    assert evaluated.per_case[case_id]["mae"] == pytest.approx(np.abs(direct - ct).mean(), rel=1e-4)
    assert evaluated.per_case[case_id]["data_range"] == pytest.approx(2000.0)
    synthrad = evaluate(
        result.checkpoint, tmp_path / "dataset", tmp_path / "sr", device="cpu", report=False, protocol="synthrad2025"
    )
    assert set(synthrad.summary) == {"mae", "psnr", "ms_ssim"}
    assert all(np.isfinite(v) for v in synthrad.summary.values())


def test_task_registry_errors() -> None:
    with pytest.raises(RegistryError, match=r"unknown task 'mr2c', did you mean 'mr2ct'\? available: ct2mr, mr2ct"):
        get_task("mr2c")
    with pytest.raises(ConfigError, match=r"did you mean 'ct2mr'"):
        validate_config({"name": "x", "data": {"dataset": "d", "task": "ct2mri"}, "train": {"output_dir": "o"}})
    bad = get_task("mr2ct").to_dict() | {"target_normaliser": "ct_windw"}
    with pytest.raises(CheckpointError, match=r"unknown normaliser 'ct_windw', did you mean 'ct_window'"):
        Task.from_dict(bad)
    with pytest.raises(CheckpointError, match=r"task record is not understood"):
        Task.from_dict({"name": "ct2mr"})


def test_dataset_roles_follow_the_task(paired_folder: Path, tmp_path: Path) -> None:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    dataset = read_dataset(tmp_path / "dataset")
    assert orient_dataset(dataset, get_task("ct2mr")) is dataset
    swapped = orient_dataset(dataset, get_task("mr2ct"))
    assert (swapped.source_modality, swapped.target_modality) == ("MR", "CT")
    for before, after in zip(dataset.cases, swapped.cases, strict=True):
        assert (after.source, after.target, after.mask) == (before.target, before.source, before.mask)
    pet = Task("pt2ct", "PT", "CT", "mr_percentile", "ct_window")
    with pytest.raises(
        InputDataError, match=r"dataset holds source CT and target MR; task 'pt2ct' translates PT -> CT"
    ):
        orient_dataset(dataset, pet)


def test_task_record_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    prep = Preprocessing(WINDOW, (0.5, 99.5), target_range=WINDOW, task=get_task("mr2ct"))
    record = json.loads(json.dumps(prep.to_dict()))  # JSON-able
    save_checkpoint({"preprocessing": record}, tmp_path / "c.pt")
    assert Preprocessing.from_dict(load_checkpoint(tmp_path / "c.pt")["preprocessing"]) == prep
    # the CT target maps back through its window, whatever target_range says
    output = torch.tensor([-1.0, 0.0, 0.5, 1.0])
    torch.testing.assert_close(prep.model_to_target(output), torch.tensor([-1000.0, 0.0, 500.0, 1000.0]))
    assert prep.target_data_range == 2000.0 and prep.source_unit_range == (-1.0, 1.0)


def test_checkpoint_without_task_loads_as_ct2mr(cli_checkpoint: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, ct_path = cli_checkpoint
    content = load_checkpoint(checkpoint)
    assert content["preprocessing"]["task"]["name"] == "ct2mr"
    del content["preprocessing"]["task"]  # as written before tasks existed
    old = save_checkpoint(content, tmp_path / "old.pt")
    translator = Translator.from_checkpoint(old, device="cpu")
    assert translator.preprocessing.task == get_task("ct2mr")
    assert translator.preprocessing.target_data_range is None  # MR target: each reference's own range
    ct = load_volume(ct_path)
    torch.testing.assert_close(translator(ct), Translator.from_checkpoint(checkpoint, device="cpu")(ct))
