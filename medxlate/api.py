"""Top-level entry points of the public API."""

from __future__ import annotations

from dataclasses import replace

from medxlate.config import ExperimentConfig
from medxlate.errors import ConfigError
from medxlate.tracking import Tracker, make_tracker
from medxlate.training import TrainResult, fit


def train(cfg: ExperimentConfig, tracker: Tracker | None = None) -> TrainResult:
    """Train a model as configured and track it (MLflow unless ``tracking.backend: none``).

    Args:
        cfg: Validated experiment config (see :func:`medxlate.load_config`).
        tracker: Overrides the tracker the config asks for (e.g. a NullTracker in tests).

    Returns:
        Run id, checkpoint path and final validation metrics.
    """
    from medxlate.training.runtime import is_rank_zero

    if tracker is None and is_rank_zero():  # under torchrun only rank 0 talks to MLflow
        tracker = make_tracker(cfg.tracking.backend, cfg.tracking.tracking_uri)
    result = fit(cfg, tracker)
    if cfg.tracking.register_as and is_rank_zero():
        if not result.run_id:
            raise ConfigError("tracking.register_as needs an MLflow run (the tracker given records none)")
        from medxlate.tracking.registry import register_checkpoint

        version = register_checkpoint(  # the slim inference checkpoint: what serving needs
            result.model or result.checkpoint, result.run_id, cfg.tracking.register_as, cfg.tracking.tracking_uri
        )
        result = replace(result, registered_model=f"models:/{cfg.tracking.register_as}/{version}")
    return result
