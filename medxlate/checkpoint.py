"""Checkpoints: plain dicts of tensors and JSON-able values, saved atomically, loaded with
``torch.load(weights_only=True)`` so an untrusted file can never execute code."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

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
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return path


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
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, truncated or unsafe): {e}") from e
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a medxlate checkpoint (no '{CHECKPOINT_FORMAT}' format marker)")
    if content.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {content.get('version')!r}, this medxlate reads {CHECKPOINT_VERSION}"
        )
    return content
