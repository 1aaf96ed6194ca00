"""Which device inference and training run on: a name checked against what this machine has."""

from __future__ import annotations

import torch

from medxlate.errors import ConfigError

__all__ = ["DEVICE_CHOICES", "resolve_device"]

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device | None) -> torch.device:
    """Turn a device name into a usable ``torch.device``, checking that it exists here.

    Args:
        name: ``"auto"``/``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"``.

    Returns:
        The device.

    Raises:
        ConfigError: for an unknown name, or a device this machine or this PyTorch build lacks.
    """
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ConfigError(f"device {str(name)!r}: unknown; expected {DEVICE_CHOICES}") from e
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {str(name)!r}: unsupported type '{device.type}'; expected {DEVICE_CHOICES}")
    if device.type == "cuda":
        if torch.version.cuda is None:
            raise ConfigError(
                f"device {str(name)!r}: this PyTorch ({torch.__version__}) is built without CUDA; use 'cpu' or 'auto'"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ConfigError(f"device {str(name)!r}: {count} CUDA GPU(s) visible; use 'cpu' or 'auto'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {str(name)!r}: MPS is not available on this machine; use 'cpu' or 'auto'")
    return device
