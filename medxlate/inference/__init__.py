"""Inference: slice-wise translation and the Translator."""

from medxlate.inference.slicewise import translate_slices
from medxlate.inference.translator import Translator, resolve_device

__all__ = ["Translator", "resolve_device", "translate_slices"]
