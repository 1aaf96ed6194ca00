"""Training: the pix2pix loop, checkpoints and validation."""

from medxlate.training.checkpoint import load_checkpoint, save_checkpoint
from medxlate.training.loop import TrainResult, fit

__all__ = ["TrainResult", "fit", "load_checkpoint", "save_checkpoint"]
