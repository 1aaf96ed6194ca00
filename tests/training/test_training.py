"""End-to-end training on a tiny phantom dataset (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medxlate.checkpoint import load_checkpoint, save_checkpoint
from medxlate.config import validate_config
from medxlate.data import read_dataset
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import CheckpointError, InputDataError
from medxlate.evaluation import evaluate
from medxlate.io import load_volume
from medxlate.tracking import NullTracker
from medxlate.training import fit
from tests.conftest import tiny_config


@pytest.fixture
def dataset(paired_folder: Path, tmp_path: Path) -> Path:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    return tmp_path / "dataset"


def test_fit_logs_metrics_and_writes_safe_checkpoint(dataset: Path, tmp_path: Path) -> None:
    cfg = validate_config(tiny_config(dataset, tmp_path / "run"))
    tracker = NullTracker()
    result = fit(cfg, tracker)
    for key in ("ssim", "psnr", "mae", "ssim_body", "psnr_body", "mae_body"):
        assert key in result.metrics
        assert torch.isfinite(torch.tensor(result.metrics[key]))
        assert [step for step, _ in tracker.metrics[f"val/{key}"]] == [1, 2]
    # the validation numbers are what evaluating the saved checkpoint on the val case gives (translated
    # independently, on the input's own LAS grid instead of the canonical one)
    evaluated = evaluate(result.checkpoint, dataset, tmp_path / "eval", device="cpu")
    assert evaluated.per_case.keys() == result.per_case.keys()
    for case_id, values in evaluated.per_case.items():
        for key in ("ssim", "psnr", "mae", "ssim_body", "psnr_body", "mae_body"):
            assert values[key] == pytest.approx(result.per_case[case_id][key], rel=1e-4), key
    assert result.metrics == result.per_case[case_id]  # one val case: the means are its values
    assert "train/loss_d" in tracker.metrics and "train/loss_g" in tracker.metrics
    assert tracker.images == ["val_montage@1", "val_montage@2"]
    assert tracker.params["train.epochs"] == "2"
    content = torch.load(result.checkpoint, weights_only=True)
    assert content["epoch"] == 2 and content["config"]["name"] == "tiny"
    assert content["preprocessing"]["divisible"] == 8
    # the reference range is the mean over the training targets of their own p0.5 / p99.5 (numpy here)
    train_targets = [load_volume(c.target).numpy() for c in read_dataset(dataset).split("train")]
    expected_range = np.mean([np.percentile(t, [0.5, 99.5]) for t in train_targets], axis=0)
    np.testing.assert_allclose(content["preprocessing"]["target_range"], expected_range, rtol=1e-5)
    assert {"generator", "discriminator", "optimizer_g", "optimizer_d"} <= content.keys()
    assert result.montage is not None and result.montage.is_file()


def test_fit_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    first = fit(validate_config(tiny_config(dataset, tmp_path / "a", epochs=1, decay_epochs=0)))
    second = fit(validate_config(tiny_config(dataset, tmp_path / "b", epochs=1, decay_epochs=0)))
    weights_a = torch.load(first.checkpoint, weights_only=True)["generator"]
    weights_b = torch.load(second.checkpoint, weights_only=True)["generator"]
    for name, tensor in weights_a.items():
        torch.testing.assert_close(tensor, weights_b[name])


def test_resume_continues_where_it_stopped(dataset: Path, tmp_path: Path) -> None:
    full = fit(validate_config(tiny_config(dataset, tmp_path / "full", epochs=2, decay_epochs=1)))
    partial_dir = tmp_path / "partial"
    with pytest.raises(_StopError):  # interrupted during epoch 2's bookkeeping, after epoch 1's checkpoint
        fit(validate_config(tiny_config(dataset, partial_dir, epochs=2, decay_epochs=1)), _StopInEpochTwo())
    assert load_checkpoint(partial_dir / "last.pt")["epoch"] == 1
    resumed = fit(
        validate_config(
            tiny_config(dataset, partial_dir, epochs=2, decay_epochs=1, resume=str(partial_dir / "last.pt"))
        )
    )
    full_weights = torch.load(full.checkpoint, weights_only=True)["generator"]
    resumed_weights = torch.load(resumed.checkpoint, weights_only=True)["generator"]
    for name, tensor in full_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor)


class _StopError(Exception):
    pass


class _StopInEpochTwo(NullTracker):
    def log_image(self, image, key, step):  # type: ignore[no-untyped-def]
        if step == 2:
            raise _StopError
        super().log_image(image, key, step)


def test_missing_val_split_is_a_clear_error(paired_folder: Path, tmp_path: Path) -> None:
    import json

    manifest = json.loads((paired_folder / "manifest.json").read_text())
    for case in manifest["cases"]:
        case["split"] = "train"
    (paired_folder / "manifest.json").write_text(json.dumps(manifest))
    prepare_dataset(paired_folder, tmp_path / "ds")
    with pytest.raises(InputDataError, match="0 val"):
        fit(validate_config(tiny_config(tmp_path / "ds", tmp_path / "run")))


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(broken)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(CheckpointError, match="not a medxlate checkpoint"):
        load_checkpoint(foreign)
    good = save_checkpoint({"x": torch.ones(2)}, tmp_path / "sub" / "ok.pt")
    torch.testing.assert_close(load_checkpoint(good)["x"], torch.ones(2))
    assert sorted(p.name for p in good.parent.iterdir()) == ["ok.pt"]


def test_checkpoint_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "medxlate-checkpoint", "version": 1, "obj": _StopError()}, path)
    with pytest.raises(CheckpointError, match="unsafe"):
        load_checkpoint(path)


def test_volume_metrics_thin_volume_falls_back_to_slices() -> None:
    from medxlate.training.validation import volume_metrics

    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(16, 16, 4, generator=generator) * 100
    prediction = reference + torch.randn(16, 16, 4, generator=generator)
    mask = torch.ones(16, 16, 4, dtype=torch.bool)
    values = volume_metrics(prediction, reference, mask)
    from medxlate import metrics

    per_slice = metrics.ssim(
        prediction.permute(2, 0, 1)[:, None],
        reference.permute(2, 0, 1)[:, None],
        data_range=values["data_range"],
        spatial_dims=2,
    )
    assert values["ssim"] == pytest.approx(float(per_slice.mean()), abs=1e-6)
    assert values["ssim_body"] == pytest.approx(values["ssim"], abs=1e-6)
    identical = volume_metrics(reference, reference, mask)
    assert identical["ssim"] == pytest.approx(1.0, abs=1e-6) and identical["mae"] == 0.0


def test_l1_only_training_steps_both_schedules_without_warning(dataset: Path, tmp_path: Path) -> None:
    import warnings

    raw = tiny_config(dataset, tmp_path / "run", epochs=2, decay_epochs=1)
    raw["loss"] = {"lambda_adv": 0.0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(validate_config(raw), NullTracker())
    assert not [w for w in caught if "lr_scheduler" in str(w.message)]
    content = load_checkpoint(result.checkpoint)
    # the discriminator never steps, but its schedule advances with the generator's
    assert [s["last_epoch"] for s in content["schedulers"]] == [2, 2]
