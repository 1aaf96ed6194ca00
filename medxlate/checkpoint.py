"""Checkpoints: plain dicts of tensors and JSON-able values, saved atomically, loaded with
``torch.load(weights_only=True)`` so an untrusted file can never execute code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import torch

from medxlate.errors import CheckpointError
from medxlate.io.atomic import atomic_path

CHECKPOINT_FORMAT = "medxlate-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` via a temporary file and an atomic rename.

    Args:
        payload: Tensors, state dicts and JSON-able values only.
        path: Destination file (parent folders are created).

    Returns:
        The path written.

    Raises:
        OSError: if the file cannot be written (full disk, quota, no permission), naming ``path``
            and the cause; an earlier file at ``path`` is left as it was and no temporary file remains.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        _torch_save(content, handle)
    return path


def _torch_save(content: dict[str, Any], handle: BinaryIO) -> None:
    """``torch.save`` into an open Python file, so that a refused write surfaces as the ``OSError`` it is.

    Given a path, PyTorch's own C++ writer reports a full disk as ``RuntimeError("[enforce fail at
    inline_container.cc] . PytorchStreamWriter failed writing file data/0: file write failed")``, the
    cause (errno) lost. Through a Python file the write raises ``OSError(ENOSPC)``, which PyTorch then
    hides behind a ``RuntimeError`` of its zip writer's clean-up: that ``OSError`` is raised instead.
    """
    try:
        torch.save(content, handle)
    except RuntimeError as e:
        cause = _chained_os_error(e)
        if cause is not None:
            raise OSError(cause.errno, cause.strerror or str(cause)) from e
        if "inline_container" not in str(e) and "PytorchStreamWriter" not in str(e):
            raise  # not a write failure: a bug, keep its traceback
        raise OSError(None, str(e).split("] . ", 1)[-1]) from e


def _chained_os_error(error: BaseException) -> OSError | None:
    """The first ``OSError`` among ``error``'s causes and contexts (cycles are cut)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a medxlate checkpoint safely (``weights_only=True``).

    Args:
        path: Checkpoint file.
        map_location: Where tensors are loaded.

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: if the file is missing, corrupt, holds objects other than tensors and plain
            values, or is not a medxlate checkpoint.
    """
    content = load_torch_file(path, map_location)
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a medxlate checkpoint (no '{CHECKPOINT_FORMAT}' format marker)")
    if content.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {content.get('version')!r}, this medxlate reads {CHECKPOINT_VERSION}"
        )
    return content


def load_torch_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Read any PyTorch file safely (``torch.load(weights_only=True)``: tensors and plain values only,
    nothing is unpickled that could run code), e.g. a state dict written by another project.

    Args:
        path: The ``.pt``/``.pth`` file.
        map_location: Where tensors are loaded.

    Returns:
        What the file holds.

    Raises:
        CheckpointError: if the file is missing, corrupt, or holds objects other than tensors and
            plain values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower():
            raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated)") from e
        raise CheckpointError(
            f"{path}: not a readable checkpoint: unsafe, it holds objects other than tensors and plain "
            "values (refused, since loading it could run code)"
        ) from e
    except Exception as e:  # torch.load raises KeyError, RuntimeError, EOFError... on arbitrary bytes
        raise CheckpointError(
            f"{path}: not a readable checkpoint (not a PyTorch file, or corrupt or truncated: {type(e).__name__})"
        ) from e


def checkpoint_field(content: dict[str, Any], path: str | Path, key: str, expected: type, within: str = "") -> Any:
    """Return ``content[key]`` after checking that it is present and of the expected type.

    Args:
        content: A loaded checkpoint (see :func:`load_checkpoint`).
        path: The checkpoint file, for the message.
        key: Field name, e.g. ``"generator_spec"``.
        expected: Required type (``dict``, ``str``, ``int``...).
        within: Name of the enclosing field for nested records, e.g. ``"generator_spec"``.

    Returns:
        The value.

    Raises:
        CheckpointError: naming the file and the field if it is missing or of another type.
    """
    name = f"{within}.{key}" if within else key
    if key not in content:
        raise CheckpointError(f"{path}: checkpoint has no '{name}' field")
    value = content[key]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise CheckpointError(
            f"{path}: checkpoint field '{name}' is a {type(value).__name__}, expected a {_type_name(expected)}"
        )
    return value


def _type_name(expected: type) -> str:
    return "mapping" if expected is dict else expected.__name__


INFERENCE_KIND = "inference"
# what Translator.from_checkpoint reads, plus provenance; no discriminator, optimiser or RNG state
_INFERENCE_KEYS = (
    "generator",
    "generator_spec",
    "preprocessing",
    "inference",
    "config",
    "source_modality",
    "target_modality",
    "dataset_fingerprint",
    "training_data",
    "medxlate_version",
    "mlflow_run_id",
    "epoch",
    "step",
    "metrics",
)


def inference_checkpoint(content: dict[str, Any]) -> dict[str, Any]:
    """The slim inference payload of a full training checkpoint (same format, ``kind: inference``).

    Keeps the generator weights and spec, preprocessing, inference strategy, modalities and
    provenance; drops the discriminator, optimiser, scheduler, sampler and RNG state, which only
    resuming training needs.

    Args:
        content: A loaded (full) checkpoint.

    Returns:
        A payload for :func:`save_checkpoint` that ``Translator.from_checkpoint`` loads.
    """
    return {**{key: content[key] for key in _INFERENCE_KEYS if key in content}, "kind": INFERENCE_KIND}
