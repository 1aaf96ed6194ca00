"""What a checkpoint's generator and inference strategy are, rebuilt and checked against each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medxlate.checkpoint import checkpoint_field
from medxlate.errors import CheckpointError
from medxlate.inference import lift
from medxlate.inference.strategy import InferenceStrategy, LiftStrategy, SliceStrategy, strategy_from_dict
from medxlate.transforms import Preprocessing

__all__ = ["build_generator_from_spec", "checked_strategy", "model_file", "model_in_artifacts"]


def model_file(path: str | Path) -> tuple[Path, dict[str, Any] | None]:
    """The checkpoint file to load for ``path``: itself, or a model package's verified checkpoint.

    Args:
        path: A checkpoint file, or a model package folder (:mod:`medxlate.package`).

    Returns:
        The checkpoint file and, for a package, its ``model.json`` record (else ``None``).

    Raises:
        CheckpointError: a folder that is not a package, or a package whose files do not match its
            ``SHA256SUMS`` (the file named).
    """
    from medxlate.package import read_package

    path = Path(path)
    if not path.is_dir():
        return path, None
    return read_package(path)


def model_in_artifacts(local: Path, model_uri: str) -> Path:
    """The model among downloaded MLflow artifacts: a package folder if there is one, else the first ``*.pt``.

    Raises:
        CheckpointError: if there is neither.
    """
    from medxlate.package import MANIFEST_FILE

    if local.is_file():
        return local
    candidates = [p.parent for p in sorted(local.rglob(MANIFEST_FILE))] or sorted(local.rglob("*.pt"))
    if not candidates:
        raise CheckpointError(f"{model_uri}: no model package or checkpoint (*.pt) found among the artifacts")
    return candidates[0]


def build_generator_from_spec(spec: dict[str, Any], source: str | Path = "checkpoint") -> torch.nn.Module:
    """Build the generator described by a checkpoint's ``generator_spec``.

    Args:
        spec: ``name``, ``spatial_dims``, ``in_channels``, ``out_channels`` and ``params``.
        source: Where the spec comes from (the checkpoint file), for messages.

    Raises:
        CheckpointError: if the spec is incomplete or a field has the wrong type.
    """
    from medxlate.models import build_generator

    name = checkpoint_field(spec, source, "name", str, within="generator_spec")
    dims = [
        checkpoint_field(spec, source, key, int, within="generator_spec")
        for key in ("spatial_dims", "in_channels", "out_channels")
    ]
    params = checkpoint_field(spec, source, "params", dict, within="generator_spec")
    return build_generator(name, *dims, **params)


def checked_strategy(path: str | Path, content: dict[str, Any], prep: Preprocessing) -> InferenceStrategy:
    """The checkpoint's inference strategy, checked against its generator and preprocessing.

    Args:
        path: The checkpoint file, for messages.
        content: The loaded checkpoint (its ``inference`` record; ``slices`` when it has none, as
            checkpoints written before strategies were recorded).
        prep: Its preprocessing.

    Returns:
        The strategy.

    Raises:
        CheckpointError: the generator's dimensionality does not fit the strategy (2D for
            ``slices``, 3D otherwise), a ``lift`` generator's views/size differ from the strategy's
            (:func:`medxlate.inference.lift.check_lift_checkpoint`), a projection task without
            ``lift`` or the slice context differs from the preprocessing's.
    """
    strategy = strategy_from_dict(content.get("inference"), prep.context_slices)
    spatial_dims = content["generator_spec"].get("spatial_dims")
    expected = 2 if isinstance(strategy, SliceStrategy) else 3
    if spatial_dims != expected:
        raise CheckpointError(
            f"{path}: inference strategy '{strategy.kind}' needs a {expected}D generator, "
            f"the checkpoint holds a {spatial_dims}D one"
        )
    if isinstance(strategy, LiftStrategy):
        lift.check_lift_checkpoint(path, content["generator_spec"], prep.task.geometry, strategy)
    elif prep.task.geometry == "projection":
        raise CheckpointError(f"{path}: task '{prep.task.name}' maps views to a volume; expected inference 'lift'")
    if isinstance(strategy, SliceStrategy) and strategy.context_slices != prep.context_slices:
        raise CheckpointError(
            f"{path}: inference context_slices {strategy.context_slices} differs from the preprocessing's "
            f"{prep.context_slices}"
        )
    return strategy
