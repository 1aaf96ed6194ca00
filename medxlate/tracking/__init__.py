"""Experiment tracking: a Tracker protocol, a null tracker and an MLflow tracker (imported lazily)."""

from __future__ import annotations

from medxlate.tracking.base import NullTracker, Tracker

__all__ = ["NullTracker", "Tracker", "make_tracker"]


def make_tracker(backend: str, tracking_uri: str | None = None) -> Tracker:
    """Build the tracker named in a config (``"mlflow"`` or ``"none"``).

    Args:
        backend: ``"mlflow"`` or ``"none"``.
        tracking_uri: Optional MLflow tracking URI.

    Returns:
        A tracker instance; MLflow is wrapped in a :class:`ResilientTracker` (background delivery,
        retried through outages, records sent only once a checkpoint covers them).
    """
    if backend == "none":
        return NullTracker()
    from medxlate.tracking.mlflow_tracker import MlflowTracker
    from medxlate.tracking.resilient import ResilientTracker

    return ResilientTracker(MlflowTracker(tracking_uri))
