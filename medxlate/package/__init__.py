"""Model packages: a trained model as a folder that travels (weights, card, SHA-256 manifest).

See ``docs/model_package.md``. Reading a package (:func:`read_package`, used by
``Translator.from_checkpoint``) needs only this subpackage's light modules; writing one
(:func:`export_package`) is imported on first use.
"""

from __future__ import annotations

from typing import Any

from medxlate.package.manifest import (
    CARD_FILE,
    MANIFEST_FILE,
    RECORD_FILE,
    WEIGHTS_FILE,
    is_package,
    read_package,
    verify_package,
)
from medxlate.package.reference import resolve_reference

__all__ = [
    "CARD_FILE",
    "MANIFEST_FILE",
    "RECORD_FILE",
    "WEIGHTS_FILE",
    "export_package",
    "is_package",
    "read_package",
    "resolve_reference",
    "verify_package",
]


def __getattr__(name: str) -> Any:
    if name == "export_package":
        from medxlate.package.export import export_package

        return export_package
    raise AttributeError(f"module 'medxlate.package' has no attribute {name!r}")
