"""Inference: strategies (slices, sliding windows, lift), whole-volume runs and the Translator.

Imports only the checkpoint format, models and transforms below it, never ``medxlate.training``.
"""

from medxlate.inference.device import resolve_device
from medxlate.inference.lift import evaluate_lift_case
from medxlate.inference.runner import infer_volume
from medxlate.inference.strategy import (
    InferenceStrategy,
    LiftStrategy,
    SliceStrategy,
    SlidingWindowStrategy,
    build_inferer,
    strategy_from_dict,
    strategy_to_dict,
)
from medxlate.inference.translator import Translator

__all__ = [
    "InferenceStrategy",
    "LiftStrategy",
    "SliceStrategy",
    "SlidingWindowStrategy",
    "Translator",
    "build_inferer",
    "evaluate_lift_case",
    "infer_volume",
    "resolve_device",
    "strategy_from_dict",
    "strategy_to_dict",
]
