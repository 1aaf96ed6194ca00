"""The tracker interface the training loop talks to, and a tracker that records nothing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Tracker(Protocol):
    """What the training loop needs from an experiment tracker."""

    run_id: str | None

    def start(
        self,
        experiment: str,
        run_name: str,
        params: dict[str, str],
        tags: dict[str, str],
        resume_run_id: str | None = None,
    ) -> str | None:
        """Open (or resume) a run and record params/tags; returns the run id, if any."""
        ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at a step (may be buffered)."""
        ...

    def log_params(self, params: dict[str, str]) -> None:
        """Record params of the open run (values that do not change during it, e.g. reference constants)."""
        ...

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """Record an (H, W, 3) uint8 image at a step."""
        ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Copy a local file into the run's artifacts."""
        ...

    def log_dataset(self, name: str, digest: str, source: str, context: str) -> None:
        """Record a dataset as an input of the run (``digest`` identifies its content)."""
        ...

    def log_table(self, columns: dict[str, list[object]], artifact_file: str) -> None:
        """Record a table (equal-length columns) as a JSON artifact ``artifact_file``."""
        ...

    def end(self, status: str = "FINISHED") -> None:
        """Flush and close the run."""
        ...


class NullTracker:
    """A tracker that keeps the last metrics in memory and writes nothing (tests, dry runs)."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.images: list[str] = []
        self.artifacts: list[Path] = []
        self.datasets: list[tuple[str, str, str, str]] = []
        self.tables: dict[str, dict[str, list[object]]] = {}
        self.params: dict[str, str] = {}

    def start(
        self,
        experiment: str,
        run_name: str,
        params: dict[str, str],
        tags: dict[str, str],
        resume_run_id: str | None = None,
    ) -> str | None:
        """Remember the params; there is no run id."""
        self.params = dict(params)
        return None

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Keep the values in memory."""
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append((step, float(value)))

    def log_params(self, params: dict[str, str]) -> None:
        """Keep the params in memory."""
        self.params.update(params)

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """Remember that an image was logged."""
        self.images.append(f"{key}@{step}")

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Remember the artifact path."""
        self.artifacts.append(Path(path))

    def log_dataset(self, name: str, digest: str, source: str, context: str) -> None:
        """Remember the dataset input."""
        self.datasets.append((name, digest, source, context))

    def log_table(self, columns: dict[str, list[object]], artifact_file: str) -> None:
        """Keep the table in memory."""
        self.tables[artifact_file] = {k: list(v) for k, v in columns.items()}

    def end(self, status: str = "FINISHED") -> None:
        """Nothing to close."""


def as_params(values: Mapping[str, float], prefix: str) -> dict[str, str]:
    """Numbers as param strings (6 significant digits) under ``prefix``, e.g. ``{"val/data_range": "2000"}``.

    Args:
        values: Name -> number.
        prefix: Prepended to each name (``"val/"``, ``"z_eval/val/"``).
    """
    return {f"{prefix}{name}": f"{float(value):.6g}" for name, value in values.items()}
