"""Models of the pix2pix family: registries, generators, discriminators, adversarial losses, and
:func:`from_pix2pix` for generators trained with the pix2pix/CycleGAN reference implementation.

Everything is dimension-generic (``spatial_dims`` 2 or 3) and built from MONAI's layer factories.

Example:
    >>> from medxlate import models
    >>> g = models.build_generator("unet", spatial_dims=2, in_channels=1, out_channels=1, num_downs=5, ngf=8)
    >>> d = models.build_discriminator("patchgan", spatial_dims=2, in_channels=2, ndf=8)
    >>> gan = models.get_adversarial_loss("lsgan")
"""

from __future__ import annotations

from typing import Any

from torch import nn

from medxlate.models.loss_terms import LOSS_TERMS
from medxlate.models.losses import AdversarialLoss, l1_loss, pix2pix_generator_loss
from medxlate.models.patchgan import PatchGANDiscriminator
from medxlate.models.pix2pix import from_pix2pix
from medxlate.models.registry import ADVERSARIAL_LOSSES, DISCRIMINATORS, GENERATORS, Registry
from medxlate.models.resnet import ResNetGenerator
from medxlate.models.unet import UNetGenerator
from medxlate.models.weights import init_weights
from medxlate.models.x2ct import X2CTGenerator

__all__ = [
    "ADVERSARIAL_LOSSES",
    "DISCRIMINATORS",
    "GENERATORS",
    "LOSS_TERMS",
    "AdversarialLoss",
    "PatchGANDiscriminator",
    "Registry",
    "ResNetGenerator",
    "UNetGenerator",
    "X2CTGenerator",
    "build_discriminator",
    "build_generator",
    "from_pix2pix",
    "get_adversarial_loss",
    "init_weights",
    "l1_loss",
    "pix2pix_generator_loss",
]


def build_generator(name: str, spatial_dims: int, in_channels: int, out_channels: int, **params: Any) -> nn.Module:
    """Build a registered generator.

    Args:
        name: registry name, one of ``GENERATORS.names()`` (e.g. ``"unet"``).
        spatial_dims: 2 for slices, 3 for volumes.
        in_channels: source image channels.
        out_channels: translated image channels.
        **params: model hyper-parameters (e.g. ``num_downs``, ``ngf``, ``norm``, ``dropout``).

    Returns:
        The generator module, initialised.

    Raises:
        RegistryError: if ``name`` is unknown (with a did-you-mean suggestion).
        ConfigError: for an unknown parameter or a bad value, naming the model and the parameter.
    """
    return GENERATORS.build(
        name, spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **params
    )


def build_discriminator(name: str, spatial_dims: int, in_channels: int, **params: Any) -> nn.Module:
    """Build a registered (conditional) discriminator.

    Args:
        name: registry name, one of ``DISCRIMINATORS.names()`` (e.g. ``"patchgan"``).
        spatial_dims: 2 or 3.
        in_channels: source channels + target channels (the input is their concatenation).
        **params: model hyper-parameters (e.g. ``ndf``, ``n_layers``, ``norm``).

    Returns:
        The discriminator module, initialised; its forward returns patch logits.

    Raises:
        RegistryError: if ``name`` is unknown (with a did-you-mean suggestion).
        ConfigError: for an unknown parameter or a bad value, naming the model and the parameter.
    """
    return DISCRIMINATORS.build(name, spatial_dims=spatial_dims, in_channels=in_channels, **params)


def get_adversarial_loss(name: str) -> AdversarialLoss:
    """Return the adversarial loss registered under ``name``.

    Args:
        name: one of ``ADVERSARIAL_LOSSES.names()``: ``"hinge"``, ``"lsgan"``, ``"vanilla"``.

    Returns:
        A stateless :class:`AdversarialLoss`.

    Raises:
        RegistryError: if ``name`` is unknown (with a did-you-mean suggestion).
    """
    return ADVERSARIAL_LOSSES.build(name)
