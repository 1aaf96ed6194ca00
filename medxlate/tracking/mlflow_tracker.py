"""MLflow tracker: the only module that imports mlflow.

Uses MLflow's own default store (SQLite ``mlflow.db`` in the working directory for MLflow 3) unless
a tracking URI is given or ``MLFLOW_TRACKING_URI`` is set. Per-step metrics are buffered and sent
with ``log_batch``.

What the MLflow UI reads is set here: the experiment's kind (a classic ML experiment, not GenAI), a
new run's Source and User (``mlflow.source.*``, ``mlflow.user``), and step images named so that
``images/`` lists them in step order.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_MAX_BATCH = 500  # MLflow accepts up to 1000 metrics per log_batch call
_MAX_PARAM_LENGTH = 6000
_MAX_DIGEST_LENGTH = 36  # MLflow's datasets.digest column (the full hash is the run's fingerprint tag)
_STEP_DIGITS = 6  # image steps zero-padded in artifact names, so listings sort 000001, 000002, ..., 000010

#: MLflow 3's experiment type tag and its classic-ML value. MLflow 3.0-3.x UIs read it to choose the
#: experiment's view (``mlflow/server/js/build/static/js/main.*.js``, module 31080: the value of the
#: experiment tag "mlflow.experimentKind", one of ``genai_development`` / ``custom_model_development``;
#: without it an experiment may be inferred as GenAI). MLflow 3.17's UI reads it only when its global
#: GenAI / Machine-learning switch is off (module 89511 turns the switch on), so there the view also
#: follows the URL's ``workflowType=machine_learning`` that :func:`ui_url` adds.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


class MlflowTracker:
    """Record a run in MLflow.

    Args:
        tracking_uri: Explicit tracking URI; ``None`` keeps MLflow's default resolution.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        import mlflow

        from medxlate.tracking.store import open_client

        self._mlflow = mlflow
        self._client = open_client(tracking_uri)  # serialised first creation of a SQLite store
        self.run_id: str | None = None
        self._buffer: list[Any] = []

    @property
    def tracking_uri(self) -> str:
        """The tracking URI in effect."""
        return str(self._mlflow.get_tracking_uri())

    def start(
        self,
        experiment: str,
        run_name: str,
        params: dict[str, str],
        tags: dict[str, str],
        resume_run_id: str | None = None,
    ) -> str | None:
        """Create (or resume) a run under ``experiment``; params are logged only for a new run."""
        if resume_run_id:
            if self._run_exists(resume_run_id):
                self.run_id = resume_run_id
                self._client.update_run(resume_run_id, status="RUNNING")
                return self.run_id
            logger.warning(
                "MLflow run %s (from the checkpoint) is not in %s; starting a new run that records it",
                resume_run_id,
                self.tracking_uri,
            )
            tags = {**tags, "medxlate.resumed_from_run": resume_run_id}
        from medxlate.tracking.run_info import run_context_tags

        run = self._client.create_run(
            self._experiment_id(experiment), run_name=run_name, tags={**run_context_tags(), **tags}
        )
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        items = [Param(k, v[:_MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start : start + 100])
        return self.run_id

    def _experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (or tagged, if it has no kind yet) as a classic ML experiment."""
        found = self._client.get_experiment_by_name(name)
        if found is None:
            return str(self._client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))
        if EXPERIMENT_KIND_TAG not in found.tags:  # a kind chosen by the user is kept
            self._client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return str(found.experiment_id)

    def _run_exists(self, run_id: str) -> bool:
        """True if the store holds ``run_id``; other store errors (outage) propagate."""
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_run(run_id)
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    def log_metrics(self, metrics: dict[str, float], step: int, timestamp_ms: int | None = None) -> None:
        """Buffer metrics; flushed in batches. ``timestamp_ms`` defaults to now."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        self._buffer.extend(Metric(k, float(v), stamp, step) for k, v in metrics.items())
        if len(self._buffer) >= _MAX_BATCH:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics."""
        if not self.run_id:
            self._buffer = []
        while self._buffer:  # a failing batch stays buffered for the next attempt
            batch = self._buffer[:_MAX_BATCH]
            self._client.log_batch(self.run_id, metrics=batch)
            del self._buffer[: len(batch)]

    def log_params(self, params: dict[str, str]) -> None:
        """Log params; one already recorded with the same value is skipped, with another value kept (warned):
        MLflow refuses to change a param."""
        if not self.run_id:
            return
        from mlflow.entities import Param

        recorded = self._client.get_run(self.run_id).data.params
        for key in sorted(k for k in params if k in recorded and recorded[k] != params[k][:_MAX_PARAM_LENGTH]):
            logger.warning(
                "MLflow run %s already records param %s = %s; the new value %s is not recorded",
                self.run_id,
                key,
                recorded[key],
                params[key],
            )
        items = [Param(k, v[:_MAX_PARAM_LENGTH]) for k, v in sorted(params.items()) if k not in recorded]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """Log an image as a step-indexed image series (MLflow UI: the run's Images chart, Artifacts / images).

        The files are those of ``MlflowClient.log_image(run, image, key=key, step=step)`` (a PNG and a
        compressed WebP thumbnail named ``<key>+step+<step>+timestamp+<ms>+<uuid>``, and the run tag
        ``mlflow.loggedImages``), except that the step is zero-padded so the artifact listing sorts by
        step (the UI reads the step with ``parseInt``).
        """
        self.flush()
        if not self.run_id:
            return
        from mlflow.tracking.multimedia import compress_image_size, convert_to_pil_image
        from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_IMAGES

        picture = convert_to_pil_image(image)
        stamp = int(time.time() * 1000)
        stem = f"{key.replace('/', '~')}+step+{step:0{_STEP_DIGITS}d}+timestamp+{stamp}+{uuid.uuid4()}"
        with tempfile.TemporaryDirectory(prefix="medxlate-image-") as folder:
            png, webp = Path(folder) / f"{stem}.png", Path(folder) / f"{stem}+compressed.webp"
            picture.save(png)
            compress_image_size(picture).save(webp)
            for path in (png, webp):
                self._client.log_artifact(self.run_id, str(path), "images")
        self._client.set_tag(self.run_id, MLFLOW_LOGGED_IMAGES, True)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Upload a file into the run's artifacts."""
        if self.run_id:
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dataset(self, name: str, digest: str, source: str, context: str) -> None:
        """Record a dataset input (MLflow UI: the run's Datasets; ``search_runs`` ``dataset.*`` filters).

        Only the name, digest (its first 36 characters: MLflow's limit) and source folder are sent:
        no schema or profile read from the data.
        """
        if not self.run_id:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = Dataset(
            name=name, digest=digest[:_MAX_DIGEST_LENGTH], source_type="local", source=json.dumps({"uri": source})
        )
        self._client.log_inputs(
            self.run_id, datasets=[DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)])]
        )

    def log_table(self, columns: dict[str, list[object]], artifact_file: str) -> None:
        """Log a table as a JSON artifact (MLflow UI: Artifacts, and the Evaluation view)."""
        if self.run_id:
            self._client.log_table(self.run_id, data=columns, artifact_file=artifact_file)

    def end(self, status: str = "FINISHED") -> None:
        """Flush metrics and mark the run finished (or FAILED/KILLED)."""
        self.flush()
        if self.run_id:
            self._client.set_terminated(self.run_id, status=status)


def ui_command(tracking_uri: str) -> str:
    """The exact shell command that opens the MLflow UI on this store (with this interpreter's mlflow)."""
    import shlex
    import sys

    return f"{shlex.quote(sys.executable)} -m mlflow ui --backend-store-uri {shlex.quote(tracking_uri)}"


def ui_url(tracking_uri: str, run_id: str, address: str = "http://127.0.0.1:5000") -> str | None:
    """The run's page in the UI that :func:`ui_command` starts, in the classic ML view
    (``workflowType=machine_learning``, see :data:`EXPERIMENT_KIND`); ``None`` if the run is not found."""
    from mlflow.tracking import MlflowClient

    try:
        experiment_id = MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    except Exception:  # the address is a convenience: an unreadable store must not fail the command
        return None
    return f"{address}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
