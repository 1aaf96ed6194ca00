"""One pix2pix optimisation step: discriminator update, then generator update."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from medxlate.inference.runner import autocast_context


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
) -> dict[str, torch.Tensor]:
    """Update D on (real, fake) pairs, then G on adversarial + L1 loss (Isola et al. 2017).

    Under DistributedDataParallel: D's two forward passes (real, fake) feed one backward, so each
    parameter's gradient is all-reduced once (no ``no_sync`` is needed: there is no gradient
    accumulation across backward calls); DDP broadcasts rank 0's buffers (BatchNorm statistics) at
    each D forward. G's update calls D without its DDP wrapper and with ``requires_grad`` off, so
    only G's gradients are reduced, by G's own DDP wrapper, in its single backward.

    With ``lambda_adv == 0`` the step is plain L1 regression: the discriminator is not run or
    updated and no ``loss_d`` is returned.

    Args:
        modules: Generator, discriminator and their optimisers.
        source: (B, C_in, *spatial) condition.
        target: (B, C_out, *spatial) real target.
        adversarial: Loss object with ``discriminator_loss(real, fake)`` and ``generator_loss(fake)``.
        lambda_l1: Weight of the L1 term.
        bf16: bf16 autocast on CUDA.
        lambda_adv: Weight of the generator's adversarial term (1 in pix2pix; 0 disables the GAN).

    Returns:
        Detached scalar loss tensors (``loss_d``, ``loss_g`` and the generator's parts); converting
        them to numbers is left to the caller so a GPU step does not wait on the host.
    """
    from medxlate.models import l1_loss, pix2pix_generator_loss

    device = source.device
    generator, discriminator = modules.generator, modules.discriminator
    with autocast_context(device, bf16):
        fake = generator(source)
    if lambda_adv == 0:
        modules.optimizer_g.zero_grad(set_to_none=True)
        l1 = l1_loss(fake.float(), target.float())
        loss_g = lambda_l1 * l1
        loss_g.backward()
        modules.optimizer_g.step()
        return {"loss_g": loss_g.detach(), "loss_g_l1": l1.detach()}
    # Discriminator: conditional pairs (source, real) vs (source, fake); the 0.5 follows pix2pix.
    for param in discriminator.parameters():
        param.requires_grad_(True)
    modules.optimizer_d.zero_grad(set_to_none=True)
    with autocast_context(device, bf16):
        real_logits = discriminator(torch.cat([source, target], dim=1))
        fake_logits = discriminator(torch.cat([source, fake.detach()], dim=1))
        loss_d = 0.5 * adversarial.discriminator_loss(real_logits.float(), fake_logits.float())
    loss_d.backward()
    modules.optimizer_d.step()
    # Generator: fool D and stay close to the target in L1.
    for param in discriminator.parameters():
        param.requires_grad_(False)
    modules.optimizer_g.zero_grad(set_to_none=True)
    judge = modules.discriminator_in_g_step or discriminator
    with autocast_context(device, bf16):
        fake_logits = judge(torch.cat([source, fake], dim=1))
    _, parts = pix2pix_generator_loss(
        fake_logits.float(), fake.float(), target.float(), adversarial, lambda_l1=lambda_l1
    )
    loss_g = lambda_adv * parts["adversarial"] + lambda_l1 * parts["l1"]
    loss_g.backward()
    modules.optimizer_g.step()
    for param in discriminator.parameters():
        param.requires_grad_(True)
    losses = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}
    losses.update({f"loss_g_{name}": value.detach() for name, value in parts.items()})
    return losses
