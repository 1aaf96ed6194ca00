"""MLflow tracker: the only module that imports mlflow.

Uses MLflow's own default store (SQLite ``mlflow.db`` in the working directory for MLflow 3) unless
a tracking URI is given or ``MLFLOW_TRACKING_URI`` is set. Per-step metrics are buffered and sent
with ``log_batch``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_MAX_BATCH = 500  # MLflow accepts up to 1000 metrics per log_batch call
_MAX_PARAM_LENGTH = 6000
_MAX_DIGEST_LENGTH = 36  # MLflow's datasets.digest column (the full hash is the run's fingerprint tag)


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
        found = self._client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self._client.create_experiment(experiment)
        run = self._client.create_run(experiment_id, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        items = [Param(k, v[:_MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[start : start + 100])
        return self.run_id

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

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """Log an image as a step-indexed image series (MLflow UI: Artifacts / images)."""
        self.flush()
        if self.run_id:
            self._client.log_image(self.run_id, image, key=key, step=step)

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
