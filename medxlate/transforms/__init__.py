"""Intensity normalisation and spatial preprocessing presets."""

from medxlate.transforms.domain import TrainingDomain
from medxlate.transforms.intensity import percentile_range, range_to_unit, unit_to_range, window_to_unit
from medxlate.transforms.preset import Preprocessing, pad_in_plane, stack_context
from medxlate.transforms.spatial import axcodes, restore_grid, to_canonical

__all__ = [
    "Preprocessing",
    "TrainingDomain",
    "axcodes",
    "pad_in_plane",
    "percentile_range",
    "range_to_unit",
    "restore_grid",
    "stack_context",
    "to_canonical",
    "unit_to_range",
    "window_to_unit",
]
