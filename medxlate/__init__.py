"""medxlate: medical image modality translation with conditional GANs.

Public API::

    import medxlate as mx
    img = mx.load_volume("ct.nii.gz")
    cfg = mx.load_config("configs/ct2mr_2d.yaml", overrides={"train.epochs": 2})
    result = mx.train(cfg)
    mr = mx.Translator.from_checkpoint(result.checkpoint)(img)
    mx.save_volume(mr, "synthetic_mr.nii.gz")
"""

from __future__ import annotations

__version__ = "0.1.0"

from medxlate import metrics
from medxlate.api import train
from medxlate.config import ExperimentConfig, load_config
from medxlate.data import fingerprint_dataset, prepare_dataset, run_prepare, verify_dataset
from medxlate.errors import (
    CheckpointError,
    ConfigError,
    GeometryError,
    InputDataError,
    MedxlateError,
    RegistryError,
)
from medxlate.evaluation import evaluate
from medxlate.inference import Translator
from medxlate.io import load_series, load_volume, save_volume, scan_dicom
from medxlate.pipeline import run_pipeline

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ExperimentConfig",
    "GeometryError",
    "InputDataError",
    "MedxlateError",
    "RegistryError",
    "Translator",
    "__version__",
    "evaluate",
    "fingerprint_dataset",
    "load_config",
    "load_series",
    "load_volume",
    "metrics",
    "prepare_dataset",
    "run_pipeline",
    "run_prepare",
    "save_volume",
    "scan_dicom",
    "train",
    "verify_dataset",
]
