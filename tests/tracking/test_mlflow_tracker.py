"""MLflow tracking against a real (temporary SQLite) store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.tracking import make_tracker
from medxlate.training import fit
from tests.conftest import tiny_config


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_tracker_batches_metrics_and_images(store: str) -> None:
    from mlflow.tracking import MlflowClient

    tracker = make_tracker("mlflow")
    run_id = tracker.start("exp", "run", {"a.b": "1"}, {"t": "v"})
    for step in range(1, 1201):
        tracker.log_metrics({"train/loss": 1.0 / step}, step=step)
    tracker.log_image(np.zeros((8, 16, 3), dtype=np.uint8), key="montage", step=1)
    tracker.end()
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.data.params == {"a.b": "1"} and run.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "train/loss")
    assert len(history) == 1200 and history[-1].step == 1200


def test_training_run_is_recorded(store: str, paired_folder: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    prepare_dataset(paired_folder, tmp_path / "dataset")
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)
    raw["tracking"] = {"backend": "mlflow"}
    cfg = validate_config(raw)
    result = fit(cfg, make_tracker("mlflow"))
    client = MlflowClient(store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tiny"
    assert run.data.params["train.epochs"] == "1"
    for key in ("val/ssim", "val/psnr", "val/mae", "val/ssim_body", "val/psnr_body", "val/mae_body"):
        assert key in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"model", "config", "images"} <= artifacts
    assert [a.path for a in client.list_artifacts(result.run_id, "model")] == ["model/last.pt"]
    all_files = {a.path for a in client.list_artifacts(result.run_id, "images")}
    assert any(path.endswith(".png") for path in all_files)


def test_translator_from_mlflow_run(store: str, paired_folder: Path, tmp_path: Path) -> None:
    import torch

    from medxlate.inference import Translator
    from medxlate.io import load_volume

    prepare_dataset(paired_folder, tmp_path / "dataset")
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)
    result = fit(validate_config(raw), make_tracker("mlflow"))
    translator = Translator.from_mlflow(f"runs:/{result.run_id}/model", device="cpu")
    assert translator.provenance["mlflow_run_id"] == result.run_id
    source = load_volume(paired_folder / "patient_2" / "ct.nii.gz")
    direct = Translator.from_checkpoint(result.checkpoint, device="cpu")(source)
    torch.testing.assert_close(translator(source).as_tensor(), direct.as_tensor())
