"""MLflow tracking against a real (temporary SQLite) store."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.tracking import make_tracker
from medxlate.training import fit
from tests.conftest import tiny_config


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
    raw["tracking"] = {"backend": "mlflow", "log_checkpoint": True}  # the resumable checkpoint only when asked
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
    assert [a.path for a in client.list_artifacts(result.run_id, "model")] == ["model/model.pt"]
    assert [a.path for a in client.list_artifacts(result.run_id, "checkpoint")] == ["checkpoint/last.pt"]
    all_files = {a.path for a in client.list_artifacts(result.run_id, "images")}
    assert any(path.endswith(".png") for path in all_files)
    # no fingerprint.json: the dataset input's digest is the hash of its index, and no fingerprint tag
    [dataset_input] = run.inputs.dataset_inputs
    index_hash = hashlib.sha256((tmp_path / "dataset" / "dataset.json").read_bytes()).hexdigest()
    assert dataset_input.dataset.digest == index_hash[:36]
    assert "medxlate.dataset_fingerprint" not in run.data.tags


def test_training_run_is_named_tagged_and_records_its_dataset(store: str, paired_folder: Path, tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from medxlate import __version__
    from medxlate.checkpoint import load_checkpoint
    from medxlate.data import fingerprint_dataset, read_dataset
    from medxlate.tracking.run_info import git_commit

    prepare_dataset(paired_folder, tmp_path / "dataset")
    fingerprint_dataset(tmp_path / "dataset")
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)
    result = fit(validate_config(raw), make_tracker("mlflow"))
    run = MlflowClient(store).get_run(result.run_id)
    assert re.fullmatch(r"tiny-\d{8}-\d{6}", run.info.run_name), run.info.run_name
    fingerprint = load_checkpoint(result.checkpoint)["dataset_fingerprint"]
    assert isinstance(fingerprint, str) and len(fingerprint) == 64
    tags = run.data.tags
    assert tags["medxlate.dataset_fingerprint"] == fingerprint
    assert tags["medxlate.task"] == "CT->MR" and tags["medxlate.version"] == __version__
    assert tags.get("medxlate.git_commit") == git_commit()
    [dataset_input] = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert dataset.name == read_dataset(tmp_path / "dataset").name
    assert dataset.digest == fingerprint[:36]
    assert json.loads(dataset.source) == {"uri": str((tmp_path / "dataset").resolve())}
    assert {tag.key: tag.value for tag in dataset_input.tags} == {"mlflow.data.context": "training"}
    found = mlflow.search_runs(
        experiment_names=["tiny"], filter_string=f"dataset.digest = '{fingerprint[:36]}'", output_format="list"
    )
    assert [r.info.run_id for r in found] == [result.run_id]


def test_translator_from_mlflow_run(store: str, paired_folder: Path, tmp_path: Path) -> None:
    import torch
    from mlflow.tracking import MlflowClient

    from medxlate.checkpoint import load_checkpoint
    from medxlate.inference import Translator
    from medxlate.io import load_volume

    prepare_dataset(paired_folder, tmp_path / "dataset")
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)
    raw["tracking"] = {"run_name": "my run"}
    result = fit(validate_config(raw), make_tracker("mlflow"))
    assert MlflowClient(store).get_run(result.run_id).info.run_name == "my run"
    translator = Translator.from_mlflow(f"runs:/{result.run_id}/model", device="cpu")
    assert translator.provenance["mlflow_run_id"] == result.run_id
    assert Path(translator.provenance["checkpoint"]).name == "model.pt"
    assert result.model is not None and result.model.parent == result.checkpoint.parent
    slim, full = load_checkpoint(result.model), load_checkpoint(result.checkpoint)
    assert set(full) - set(slim) == {
        "discriminator",
        "optimizer_g",
        "optimizer_d",
        "schedulers",
        "sampler",
        "rng_states",
        "position",
        "world_size",
        "tracking_backlog",
    }
    for key in set(slim) - {"kind"}:
        assert key in full and (key == "generator" or slim[key] == full[key]), key
    assert slim["kind"] == "inference"
    assert result.model.stat().st_size < 0.5 * result.checkpoint.stat().st_size
    source = load_volume(paired_folder / "patient_2" / "ct.nii.gz")
    direct = Translator.from_checkpoint(result.checkpoint, device="cpu")(source)
    torch.testing.assert_close(translator(source).as_tensor(), direct.as_tensor(), rtol=0, atol=0)


def test_evaluation_summary_sorts_after_the_curves_and_cases_are_a_table(
    store: str, paired_folder: Path, tmp_path: Path
) -> None:
    import math

    import mlflow
    from mlflow.tracking import MlflowClient

    from medxlate.evaluation import evaluate

    prepare_dataset(paired_folder, tmp_path / "dataset")
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)
    result = fit(validate_config(raw), make_tracker("mlflow"))
    tracker = make_tracker("mlflow")
    tracker.start("tiny", "ignored", {}, {}, resume_run_id=result.run_id)  # as the pipeline does
    evaluation = evaluate(result.checkpoint, tmp_path / "dataset", tmp_path / "eval", tracker=tracker, device="cpu")
    tracker.end()
    client = MlflowClient(store)
    metrics = client.get_run(result.run_id).data.metrics
    summary = {key.removeprefix("z_eval/val/"): v for key, v in metrics.items() if key.startswith("z_eval/val/")}
    scores = {k: v for k, v in evaluation.summary.items() if k != "data_range"}  # data_range: a param
    assert summary == scores and not any(key.startswith("eval/") for key in metrics)
    assert sorted(metrics)[-len(summary) :] == sorted(f"z_eval/val/{k}" for k in summary)  # after train/ and val/
    frame = mlflow.search_runs(experiment_names=["tiny"])  # one column per summary value, one row per run
    assert frame.loc[0, "metrics.z_eval/val/ssim"] == evaluation.summary["ssim"]
    table = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=result.run_id, artifact_path="evaluation/val_default_per_case.json"
            )
        ).read_text()
    )
    rows = {row[0]: dict(zip(table["columns"], row, strict=True)) for row in table["data"]}
    assert set(rows) == set(evaluation.per_case)
    for case, values in evaluation.per_case.items():
        for name, value in values.items():
            if math.isfinite(value):  # MLflow's table JSON keeps 10 decimals
                assert rows[case][name] == pytest.approx(value, rel=0, abs=1e-10), (case, name)
            else:
                assert rows[case][name] is None, (case, name)
