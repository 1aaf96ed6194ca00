"""One pix2pix optimisation step: discriminator update, then generator update."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from medxlate.inference.runner import autocast_context
from medxlate.models.loss_terms import ProjectionContext, WeightedTerm


@dataclass
class GanModules:
    """Networks and optimisers of a conditional GAN.

    ``discriminator_in_g_step`` is the discriminator as called in the generator update, where its
    parameters take no gradient. Under DDP it is the network without the DDP wrapper: a DDP
    forward whose parameters do not require grad would leave DDP waiting for gradients that never
    come. ``None`` means ``discriminator``.
    """

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    discriminator_in_g_step: torch.nn.Module | None = None


def train_step(
    modules: GanModules,
    source: torch.Tensor,
    target: torch.Tensor,
    adversarial: object,
    lambda_l1: float,
    bf16: bool = True,
    lambda_adv: float = 1.0,
    *,
    terms: Sequence[WeightedTerm] = (),
    conditional: bool = True,
    reference_views: torch.Tensor | None = None,
    projection: ProjectionContext | None = None,
) -> dict[str, torch.Tensor]:
    """Update D on (real, fake), then G on ``lambda_adv * adversarial + sum(weight * term)`` (Isola et al. 2017).

    The generator's objective is a sum of registered, weighted loss terms
    (:mod:`medxlate.models.loss_terms`): ``l1`` weighted by ``lambda_l1`` (always computed and
    logged, pix2pix's term) plus ``terms`` (e.g. ``projection`` for X-ray -> CT); terms of weight
    0 other than ``l1`` are not computed.

    Under DistributedDataParallel: D's two forward passes (real, fake) feed one backward, so each
    parameter's gradient is all-reduced once (no ``no_sync`` is needed: there is no gradient
    accumulation across backward calls); DDP broadcasts rank 0's buffers (BatchNorm statistics) at
    each D forward. G's update calls D without its DDP wrapper and with ``requires_grad`` off, so
    only G's gradients are reduced, by G's own DDP wrapper, in its single backward.

    With ``lambda_adv == 0`` the step is plain regression on the terms: the discriminator is not
    run or updated and no ``loss_d`` is returned.

    Args:
        modules: Generator, discriminator and their optimisers.
        source: (B, C_in, *spatial) condition (X-ray -> CT: (B, V, H, W) views).
        target: (B, C_out, *spatial) real target.
        adversarial: Loss object with ``discriminator_loss(real, fake)`` and ``generator_loss(fake)``.
        lambda_l1: Weight of the L1 term.
        bf16: bf16 autocast on CUDA.
        lambda_adv: Weight of the generator's adversarial term (1 in pix2pix; 0 disables the GAN).
        terms: Further weighted terms (name, weight, term).
        conditional: The discriminator judges ``cat([source, target])`` (source and target on one
            grid); ``False``: the target alone (X-ray -> CT, whose views are not on the volume's grid).
        reference_views: Clean views of the real target, for the ``projection`` term.
        projection: Geometry of the views, for the ``projection`` term.

    Returns:
        Detached scalar loss tensors (``loss_d``, ``loss_g`` and the generator's parts
        ``loss_g_<term>``); converting them to numbers is left to the caller so a GPU step does not
        wait on the host.
    """
    from medxlate.models.loss_terms import LOSS_TERMS, LossInputs

    device = source.device
    generator, discriminator = modules.generator, modules.discriminator

    def judged(volume: torch.Tensor) -> torch.Tensor:
        return torch.cat([source, volume], dim=1) if conditional else volume

    with autocast_context(device, bf16):
        fake = generator(source)
    loss_d = None
    if lambda_adv != 0:
        # Discriminator: (source, real) vs (source, fake), or real vs fake; the 0.5 follows pix2pix.
        for param in discriminator.parameters():
            param.requires_grad_(True)
        modules.optimizer_d.zero_grad(set_to_none=True)
        with autocast_context(device, bf16):
            real_logits = discriminator(judged(target))
            fake_logits = discriminator(judged(fake.detach()))
            loss_d = 0.5 * adversarial.discriminator_loss(real_logits.float(), fake_logits.float())
        loss_d.backward()
        modules.optimizer_d.step()
        for param in discriminator.parameters():
            param.requires_grad_(False)
    # Generator: fool D (when adversarial) and stay close to the target by every weighted term.
    modules.optimizer_g.zero_grad(set_to_none=True)
    parts: dict[str, torch.Tensor] = {}
    loss_g = torch.zeros((), device=device)
    if loss_d is not None:
        judge = modules.discriminator_in_g_step or discriminator
        with autocast_context(device, bf16):
            fake_logits = judge(judged(fake))
        parts["adversarial"] = adversarial.generator_loss(fake_logits.float())
        loss_g = loss_g + lambda_adv * parts["adversarial"]
    inputs = LossInputs(fake.float(), target.float(), source, reference_views, projection)
    weighted = [("l1", lambda_l1, LOSS_TERMS.build("l1")), *(t for t in terms if t[0] != "l1")]
    for name, weight, term in weighted:
        if weight == 0 and name != "l1":  # l1 is always computed: it is logged even when not optimised
            continue
        parts[name] = term(inputs)
        loss_g = loss_g + weight * parts[name]
    loss_g.backward()
    modules.optimizer_g.step()
    for param in discriminator.parameters():
        param.requires_grad_(True)
    losses = {"loss_g": loss_g.detach()}
    if loss_d is not None:
        losses["loss_d"] = loss_d.detach()
    losses.update({f"loss_g_{name}": value.detach() for name, value in parts.items()})
    return losses
