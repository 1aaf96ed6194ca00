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
        A tracker instance.
    """
    if backend == "none":
        return NullTracker()
    from medxlate.tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(tracking_uri)
