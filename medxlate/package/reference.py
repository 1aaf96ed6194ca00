"""What a model reference names: a local checkpoint or package, or an MLflow model. Nothing is downloaded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from medxlate.errors import CheckpointError

__all__ = ["resolve_reference"]

MLFLOW_SCHEMES = ("runs", "models")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two letters at least: "C:\..." is a Windows path


def resolve_reference(reference: str | Path) -> tuple[Literal["path", "mlflow"], str | Path]:
    """Resolve a model reference to a local path or an MLflow model URI.

    Args:
        reference: A path (checkpoint file or package folder), ``file://`` URL, or MLflow URI
            (``runs:/<run id>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``).

    Returns:
        ``("path", Path)`` or ``("mlflow", uri)``.

    Raises:
        CheckpointError: for any other scheme (``http(s)://``, ``hf://``, ``s3://``...): medxlate
            never downloads from a hub; or a ``file://`` URL naming another host.
    """
    if isinstance(reference, Path):
        return "path", reference
    match = _SCHEME.match(reference)
    if match is None:
        return "path", Path(reference)
    scheme = match.group(1).lower()
    if scheme in MLFLOW_SCHEMES:
        return "mlflow", reference
    if scheme == "file":
        parsed = urlparse(reference)
        if parsed.netloc not in ("", "localhost"):
            raise CheckpointError(
                f"{reference}: a file:// URL on host '{parsed.netloc}'; expected a local file (file:///path)"
            )
        return "path", Path(unquote(parsed.path))
    raise CheckpointError(
        f"{reference}: '{scheme}:' references are not supported; medxlate loads models from local paths "
        "(a checkpoint file, a package folder or file:// URL) or MLflow (runs:/..., models:/...) and never "
        "downloads from a hub or the web: download the package yourself, then give its folder"
    )
