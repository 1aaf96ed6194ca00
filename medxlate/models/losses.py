"""Adversarial losses (``lsgan``, ``vanilla``, ``hinge``) and the pix2pix generator objective.

All losses take raw discriminator logits (no sigmoid/tanh applied) and return scalar tensors, means
over every patch logit. They are stateless: the classes only group the two halves of each game.

Discriminator losses are the plain sum ``loss on real + loss on fake``. pix2pix halves it in its D
update ("we divide the objective by 2 while optimizing D, which slows down the rate at which D learns
relative to G"); that factor belongs to the training step (``training.steps`` applies it), not here.

Relation to MONAI's :class:`monai.losses.PatchAdversarialLoss`:

* ``lsgan`` uses it (``criterion="least_squares"``), with ``no_activation_leastsq=True``: by default
  MONAI passes logits through LeakyReLU(0.05) first, which pix2pix's LSGAN does not.
* ``vanilla`` does not: MONAI's ``"bce"`` applies a sigmoid then ``BCELoss``, which saturates (for a
  logit of -200 on a real target it returns the clamp value 100 with a zero gradient);
  ``binary_cross_entropy_with_logits`` is exact and stable (200, gradient -1).
* ``hinge`` does not: MONAI's ``"hinge"`` squashes logits with tanh first, so ``relu(1 - tanh(x))``
  is never inactive (it is ``1 - tanh(x)``), and its generator loss is the margin loss on real
  targets; the hinge GAN (Lim & Ye 2017, SAGAN, BigGAN) uses ``relu(1 -+ x)`` for D and ``-mean(x)``
  for G on raw logits.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from monai.losses import PatchAdversarialLoss

from medxlate.errors import ConfigError, GeometryError
from medxlate.models.registry import ADVERSARIAL_LOSSES

__all__ = [
    "AdversarialLoss",
    "HingeLoss",
    "LSGANLoss",
    "VanillaGANLoss",
    "l1_loss",
    "pix2pix_generator_loss",
]


class AdversarialLoss(ABC):
    """The two halves of a GAN objective, on discriminator logits."""

    name: str

    @abstractmethod
    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Loss minimised by the discriminator: real term + fake term (not halved).

        Args:
            real_logits: discriminator logits on (source, real target) pairs, any shape.
            fake_logits: logits on (source, generated target) pairs, generator output detached.

        Returns:
            Scalar tensor.
        """

    @abstractmethod
    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Adversarial loss minimised by the generator.

        Args:
            fake_logits: logits on (source, generated target) pairs, with gradient to the generator.

        Returns:
            Scalar tensor.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@ADVERSARIAL_LOSSES.register("lsgan")
class LSGANLoss(AdversarialLoss):
    """Least-squares GAN (Mao et al. 2017), pix2pix's ``--gan_mode lsgan``.

    ``D = mean((real - 1)^2) + mean(fake^2)``, ``G = mean((fake - 1)^2)``.
    """

    name = "lsgan"

    def __init__(self) -> None:
        self._mse = PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real = self._mse(real_logits, target_is_real=True, for_discriminator=True)
        fake = self._mse(fake_logits, target_is_real=False, for_discriminator=True)
        return real + fake  # type: ignore[operator]  # both are tensors with reduction="mean"

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return self._mse(fake_logits, target_is_real=True, for_discriminator=False)  # type: ignore[return-value]


@ADVERSARIAL_LOSSES.register("vanilla")
class VanillaGANLoss(AdversarialLoss):
    """Original GAN with the non-saturating generator loss, pix2pix's ``--gan_mode vanilla``.

    ``D = BCE(real, 1) + BCE(fake, 0)``, ``G = BCE(fake, 1)``, with BCE on logits.
    """

    name = "vanilla"

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real + fake

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


@ADVERSARIAL_LOSSES.register("hinge")
class HingeLoss(AdversarialLoss):
    """Hinge GAN (Lim & Ye 2017; SAGAN, BigGAN).

    ``D = mean(relu(1 - real)) + mean(relu(1 + fake))``, ``G = -mean(fake)``.
    """

    name = "hinge"

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


def l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error, optionally restricted to a mask (e.g. the body).

    Args:
        pred: prediction, shape ``(B, C, *spatial)``.
        target: same shape as ``pred``.
        mask: optional weights broadcastable to ``pred`` (bool or float, e.g. ``(B, 1, *spatial)``);
            the loss is ``sum(|pred - target| * mask) / sum(mask)`` over the broadcast shape, and 0
            when the mask is empty.

    Returns:
        Scalar tensor.

    Raises:
        GeometryError: if the shapes do not match or the mask does not broadcast to ``pred``.
    """
    if pred.shape != target.shape:
        raise GeometryError(f"l1_loss: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    diff = (pred - target).abs()
    if mask is None:
        return diff.mean()
    try:
        broadcast = torch.broadcast_shapes(mask.shape, diff.shape)
    except RuntimeError as e:
        raise GeometryError(
            f"l1_loss: mask shape {tuple(mask.shape)} does not broadcast to pred shape {tuple(pred.shape)}"
        ) from e
    if broadcast != diff.shape:
        raise GeometryError(f"l1_loss: mask shape {tuple(mask.shape)} would enlarge pred shape {tuple(pred.shape)}")
    weights = mask.to(diff.dtype).expand_as(diff)  # (B, C, *spatial)
    return (diff * weights).sum() / weights.sum().clamp_min(torch.finfo(diff.dtype).tiny)


def pix2pix_generator_loss(
    fake_logits: torch.Tensor,
    fake: torch.Tensor,
    real: torch.Tensor,
    adversarial: AdversarialLoss | str,
    lambda_l1: float = 100.0,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """pix2pix generator objective: ``G_adv + lambda_l1 * L1(fake, real)``.

    Args:
        fake_logits: discriminator logits on ``cat([source, fake])``.
        fake: generated target, ``(B, C, *spatial)``.
        real: real target, same shape.
        adversarial: an :class:`AdversarialLoss` or a registered name (``"lsgan"``, ...).
        lambda_l1: weight of the L1 term (100 in pix2pix); finite and >= 0.
        mask: optional mask for the L1 term, see :func:`l1_loss`.

    Returns:
        ``(total, parts)`` where ``parts = {"adversarial": G_adv, "l1": L1}`` holds the unweighted
        terms; all are scalar tensors attached to the graph (detach or ``.item()`` them to log).

    Raises:
        ConfigError: if ``lambda_l1`` is negative or not finite.
        RegistryError: if ``adversarial`` is an unknown name.
        GeometryError: if ``fake``, ``real`` and ``mask`` shapes do not fit.
    """
    if (
        isinstance(lambda_l1, bool)
        or not isinstance(lambda_l1, (int, float))
        or not (math.isfinite(lambda_l1) and lambda_l1 >= 0)
    ):
        raise ConfigError(
            f"pix2pix_generator_loss: parameter 'lambda_l1' got {lambda_l1!r}; expected a finite number >= 0"
        )
    loss = ADVERSARIAL_LOSSES.build(adversarial) if isinstance(adversarial, str) else adversarial
    g_adv = loss.generator_loss(fake_logits)
    l1 = l1_loss(fake, real, mask)
    return g_adv + lambda_l1 * l1, {"adversarial": g_adv, "l1": l1}
