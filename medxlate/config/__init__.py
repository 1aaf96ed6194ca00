"""Experiment configuration: frozen, validated models; the only place YAML is parsed."""

from medxlate.config.loader import (
    apply_overrides,
    flatten_config,
    load_config,
    parse_override,
    read_yaml,
    validate_config,
    validate_model,
)
from medxlate.config.prepare import PrepareConfig, load_prepare_config
from medxlate.config.schema import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    TrackingConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "LossConfig",
    "ModelConfig",
    "PrepareConfig",
    "TrackingConfig",
    "TrainConfig",
    "apply_overrides",
    "flatten_config",
    "load_config",
    "load_prepare_config",
    "parse_override",
    "read_yaml",
    "validate_config",
    "validate_model",
]
