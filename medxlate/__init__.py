"""medxlate: medical image modality translation with conditional GANs.

Public API::

    import medxlate as mx
    img = mx.load_volume("ct.nii.gz")
    cfg = mx.load_config("configs/ct2mr_2d.yaml", overrides={"train.epochs": 2})
    result = mx.train(cfg)
    mr = mx.Translator.from_checkpoint(result.checkpoint)(img)
    mx.save_volume(mr, "synthetic_mr.nii.gz")

The public names are imported on first use (PEP 562), so ``import medxlate`` is cheap and importing
one layer (e.g. ``medxlate.inference``) does not import the layers above it (``medxlate.training``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "CheckpointError": "medxlate.errors",
    "ConfigError": "medxlate.errors",
    "DeviceMemoryError": "medxlate.errors",
    "ExperimentConfig": "medxlate.config",
    "GeometryError": "medxlate.errors",
    "InputDataError": "medxlate.errors",
    "MedxlateError": "medxlate.errors",
    "NonFiniteError": "medxlate.errors",
    "RegistryError": "medxlate.errors",
    "Translator": "medxlate.inference",
    "evaluate": "medxlate.evaluation",
    "fingerprint_dataset": "medxlate.data",
    "load_config": "medxlate.config",
    "load_series": "medxlate.io",
    "load_volume": "medxlate.io",
    "prepare_dataset": "medxlate.data",
    "run_pipeline": "medxlate.pipeline",
    "run_prepare": "medxlate.data",
    "save_volume": "medxlate.io",
    "scan_dicom": "medxlate.io",
    "train": "medxlate.api",
    "verify_dataset": "medxlate.data",
}
# every subpackage is an attribute of the top level, imported on first access like the names above
_SUBMODULES = (
    "config",
    "data",
    "inference",
    "io",
    "metrics",
    "models",
    "package",
    "tasks",
    "tracking",
    "training",
    "transforms",
    "xray",
)

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DeviceMemoryError",
    "ExperimentConfig",
    "GeometryError",
    "InputDataError",
    "MedxlateError",
    "NonFiniteError",
    "RegistryError",
    "Translator",
    "__version__",
    "config",
    "data",
    "evaluate",
    "fingerprint_dataset",
    "inference",
    "io",
    "load_config",
    "load_series",
    "load_volume",
    "metrics",
    "models",
    "package",
    "prepare_dataset",
    "run_pipeline",
    "run_prepare",
    "save_volume",
    "scan_dicom",
    "tasks",
    "tracking",
    "train",
    "training",
    "transforms",
    "verify_dataset",
    "xray",
]

if TYPE_CHECKING:
    from medxlate import (
        config,
        data,
        inference,
        io,
        metrics,
        models,
        package,
        tasks,
        tracking,
        training,
        transforms,
        xray,
    )
    from medxlate.api import train
    from medxlate.config import ExperimentConfig, load_config
    from medxlate.data import fingerprint_dataset, prepare_dataset, run_prepare, verify_dataset
    from medxlate.errors import (
        CheckpointError,
        ConfigError,
        DeviceMemoryError,
        GeometryError,
        InputDataError,
        MedxlateError,
        NonFiniteError,
        RegistryError,
    )
    from medxlate.evaluation import evaluate
    from medxlate.inference import Translator
    from medxlate.io import load_series, load_volume, save_volume, scan_dicom
    from medxlate.pipeline import run_pipeline


def __getattr__(name: str) -> Any:
    """Import a public name on first access (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f"medxlate.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'medxlate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
