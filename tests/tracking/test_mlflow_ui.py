"""What the MLflow UI reads from the store: experiment kind, Source and User, params vs. metrics,
image artifact names, the artifacts of a run, registered versions (against a real SQLite store)."""

from __future__ import annotations

import getpass
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.tracking import make_tracker
from medxlate.tracking.mlflow_tracker import MlflowTracker
from tests.conftest import tiny_config, write_paired_folder

MEDXLATE = "/opt/env/bin/medxlate"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # what MLflow 3's UI reads (see medxlate.tracking.mlflow_tracker)


def test_experiment_opens_as_a_classic_ml_experiment(store: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    run_id = MlflowTracker(store).start("fresh", "run", {}, {})
    assert client.get_experiment_by_name("fresh").tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    old = client.create_experiment("made before")  # no kind yet: tagged on the next run
    MlflowTracker(store).start("made before", "run", {}, {})
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    MlflowTracker(store).start("chosen", "run", {}, {})
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"  # the user's choice
    from medxlate.tracking.mlflow_tracker import ui_url

    experiment_id = client.get_run(run_id).info.experiment_id
    assert ui_url(store, run_id) == (
        f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
    )


def test_new_run_has_source_and_user_but_no_patient_path(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    argv = [MEDXLATE, "run", "--set", "data.dataset=/data/Doe_John/x.yaml", "pipelines/demo.yaml", "/data/Doe_John"]
    monkeypatch.setattr("sys.argv", argv)
    run_id = make_tracker("mlflow", store).start("exp", "run", {}, {"medxlate.task": "CT->MR"})
    tags = MlflowClient(store).get_run(run_id).data.tags
    assert tags["mlflow.source.name"] == "medxlate run pipelines/demo.yaml"
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"] == getpass.getuser()
    assert tags["medxlate.task"] == "CT->MR" and "Doe" not in json.dumps(tags)


def test_step_images_sort_by_step_in_the_artifact_listing(store: str) -> None:
    from mlflow.tracking import MlflowClient

    tracker = MlflowTracker(store)
    run_id = tracker.start("exp", "run", {}, {})
    for step in range(1, 13):
        tracker.log_image(np.full((8, 12, 3), step, dtype=np.uint8), key="val_montage", step=step)
    client = MlflowClient(store)
    names = [Path(a.path).name for a in client.list_artifacts(run_id, "images")]
    assert len(names) == 24
    # what the UI parses (split on "+", "step" and "timestamp" fields, parseInt of the step)
    fields = [name.rsplit(".", 1)[0].split("+") for name in names]
    assert all(f[0] == "val_montage" and f[1] == "step" and f[3] == "timestamp" for f in fields)
    steps = [int(f[2]) for f in fields]
    assert steps == sorted(steps) and sorted(set(steps)) == list(range(1, 13))  # 1, 2, ..., 12 in name order
    assert sum(name.endswith("+compressed.webp") for name in names) == 12
    assert client.get_run(run_id).data.tags["mlflow.loggedImages"] == "True"


def _ceiling_dataset(paired_folder: Path, root: Path) -> Path:
    """A prepared dataset whose val case also holds a noise-free target (as simulated data does)."""
    dataset = root / "dataset"
    prepare_dataset(paired_folder, dataset)
    index = json.loads((dataset / "dataset.json").read_text())
    for case in index["cases"]:
        target = dataset / case["files"]["target"]
        image = nib.load(str(target))
        smooth = np.asarray(image.dataobj, dtype=np.float32) * 0.97 + 5.0
        noise_free = target.with_name("target_noise_free.nii.gz")
        nib.save(nib.Nifti1Image(smooth, image.affine, image.header), str(noise_free))
        case["files"]["target_noise_free"] = str(noise_free.relative_to(dataset))
    (dataset / "dataset.json").write_text(json.dumps(index))
    return dataset


@dataclass(frozen=True)
class TrainedRun:
    """A registered, evaluated tiny run in a SQLite store, and what MLflow logged while registering."""

    store: str
    result: Any
    evaluation: Any
    mlflow_messages: list[str]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedRun]:
    import mlflow

    from medxlate.api import train
    from medxlate.evaluation import evaluate

    root = tmp_path_factory.mktemp("mlflow_ui")
    store = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", store)
        mlflow.set_tracking_uri(store)
        dataset = _ceiling_dataset(write_paired_folder(root / "pairs"), root)
        raw = tiny_config(dataset, root / "run", epochs=1, decay_epochs=0)
        raw["tracking"] = {"backend": "mlflow", "register_as": "tiny_ui"}
        messages: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("mlflow").addHandler(handler)
        try:
            result = train(validate_config(raw))
        finally:
            logging.getLogger("mlflow").removeHandler(handler)
        tracker = make_tracker("mlflow", store)
        tracker.start("tiny", "ignored", {}, {}, resume_run_id=result.run_id)  # as the pipeline does
        evaluation = evaluate(result.checkpoint, dataset, root / "eval", tracker=tracker, device="cpu")
        tracker.end()
        yield TrainedRun(store, result, evaluation, messages)


def test_data_constants_are_params_not_metric_charts(trained: TrainedRun) -> None:
    from mlflow.tracking import MlflowClient

    run = MlflowClient(trained.store).get_run(trained.result.run_id)
    metrics, params = run.data.metrics, run.data.params
    ceilings = {k for k in trained.evaluation.summary if k.startswith("ceiling_")}
    assert len(ceilings) == 6
    constant_keys = {"val/data_range", "z_eval/val/data_range"} | {f"z_eval/val/{k}" for k in ceilings}
    assert not [k for k in metrics if "ceiling" in k or "data_range" in k]
    assert constant_keys <= set(params)
    ceiling = trained.evaluation.summary["ceiling_ssim_body"]
    assert float(params["z_eval/val/ceiling_ssim_body"]) == pytest.approx(ceiling, rel=1e-5)
    assert float(params["val/data_range"]) == pytest.approx(trained.result.metrics["data_range"], rel=1e-5)
    assert {"z_eval/val/ssim_body", "val/ssim_body", "val/psnr_body"} <= set(metrics)  # the model's scores stay


def test_resumable_checkpoint_is_uploaded_only_when_asked(trained: TrainedRun) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(trained.store)
    assert [a.path for a in client.list_artifacts(trained.result.run_id, "model")] == ["model/model.pt"]
    assert client.list_artifacts(trained.result.run_id, "checkpoint") == []
    assert client.get_run(trained.result.run_id).data.params["tracking.log_checkpoint"] == "False"
    assert trained.result.checkpoint.is_file()  # still on disk for --resume


def test_registered_version_has_description_and_tags(trained: TrainedRun) -> None:
    from mlflow.tracking import MlflowClient

    version = MlflowClient(trained.store).get_model_version("tiny_ui", "1")
    run_id, metrics = trained.result.run_id, trained.result.metrics
    assert version.run_id == run_id
    description = version.description or ""
    assert "CT -> MR" in description and "task ct2mr" in description
    assert run_id in description and "models:/tiny_ui/1" in description
    shown = re.search(r"ssim_body=([0-9.]+)", description)
    assert shown and float(shown.group(1)) == pytest.approx(metrics["ssim_body"], rel=1e-3)
    tags = version.tags
    assert tags["medxlate.task"] == "CT->MR" and tags["medxlate.inference"] == "slices"
    assert float(tags["val/ssim_body"]) == pytest.approx(metrics["ssim_body"], rel=1e-5)


def test_registering_pickles_nothing_and_says_nothing_about_cloudpickle(trained: TrainedRun) -> None:
    import mlflow

    assert not [m for m in trained.mlflow_messages if "cloudpickle" in m.lower()], trained.mlflow_messages
    local = Path(mlflow.artifacts.download_artifacts("models:/tiny_ui/1", tracking_uri=trained.store))
    assert not list(local.rglob("*.pkl")) and "python_model.pkl" not in (local / "MLmodel").read_text()
    model = mlflow.pyfunc.load_model(str(local))  # the model as code still loads
    assert model.metadata.get_input_schema().inputs[0].shape == (1, -1, -1, -1)
