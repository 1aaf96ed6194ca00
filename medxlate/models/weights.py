"""Weight initialisation as in pix2pix (``networks.init_weights`` of junyanz/pytorch-CycleGAN-and-pix2pix)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from medxlate.errors import ConfigError
from medxlate.models.registry import did_you_mean

__all__ = ["INITIALIZERS", "init_weights"]


def _normal(weight: torch.Tensor, gain: float) -> None:
    nn.init.normal_(weight, 0.0, gain)


def _xavier(weight: torch.Tensor, gain: float) -> None:
    nn.init.xavier_normal_(weight, gain=gain)


def _kaiming(weight: torch.Tensor, gain: float) -> None:
    nn.init.kaiming_normal_(weight, a=0, mode="fan_in")  # pix2pix ignores the gain here


def _orthogonal(weight: torch.Tensor, gain: float) -> None:
    nn.init.orthogonal_(weight, gain=gain)


# Conv/Linear weight initialisers by name (the pix2pix ``--init_type`` choices).
INITIALIZERS: dict[str, Callable[[torch.Tensor, float], None]] = {
    "normal": _normal,
    "xavier": _xavier,
    "kaiming": _kaiming,
    "orthogonal": _orthogonal,
}


def init_weights(module: nn.Module, init: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise a network in place, as pix2pix does.

    * Convolutions (any dimension, transposed included) and linear layers: weight from the ``init``
      scheme (``"normal"``: N(0, gain); ``"xavier"``: Xavier normal with ``gain``; ``"kaiming"``:
      Kaiming normal, fan-in, gain ignored; ``"orthogonal"``: orthogonal with ``gain``); bias 0.
    * Batch norm (any dimension, with affine parameters): weight N(1, gain), bias 0, whatever
      ``init`` is. Instance norm in our models has no parameters.

    Args:
        module: the network; all submodules are visited.
        init: one of ``"normal"``, ``"xavier"``, ``"kaiming"``, ``"orthogonal"``.
        gain: standard deviation / gain, 0.02 in pix2pix.

    Returns:
        ``module`` itself, for chaining.

    Raises:
        ConfigError: if ``init`` is unknown.
    """
    if not (isinstance(init, str) and init in INITIALIZERS):
        hint = did_you_mean(init, INITIALIZERS) if isinstance(init, str) else ""
        raise ConfigError(
            f"init_weights: parameter 'init' got {init!r};{hint} expected one of: {', '.join(INITIALIZERS)}"
        )
    initialize = INITIALIZERS[init]
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (_ConvNd, nn.Linear)):
                initialize(m.weight, gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, _BatchNorm) and m.affine:
                nn.init.normal_(m.weight, 1.0, gain)
                nn.init.zeros_(m.bias)
    return module
