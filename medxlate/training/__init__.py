"""Training: the pix2pix loop and validation (the checkpoint format is :mod:`medxlate.checkpoint`)."""

from medxlate.training.loop import TrainResult, fit

__all__ = ["TrainResult", "fit"]
