"""One GAN step: ``lambda_adv`` weights the adversarial term; 0 is plain L1 regression."""

from __future__ import annotations

import copy

import torch

from medxlate.models import build_discriminator, build_generator, get_adversarial_loss, l1_loss
from medxlate.training.steps import GanModules, train_step


def _modules(seed: int = 0) -> GanModules:
    torch.manual_seed(seed)
    generator = build_generator("unet", 2, 1, 1, num_downs=3, ngf=4, dropout=0.0)
    discriminator = build_discriminator("patchgan", 2, 2, ndf=4, n_layers=2)
    return GanModules(
        generator=generator,
        discriminator=discriminator,
        optimizer_g=torch.optim.SGD(generator.parameters(), lr=0.1),
        optimizer_d=torch.optim.SGD(discriminator.parameters(), lr=0.1),
    )


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 1, 16, 16, generator=generator) * 2 - 1, torch.rand(2, 1, 16, 16, generator=generator) * 2 - 1


def test_lambda_adv_zero_is_l1_regression_and_leaves_d_alone() -> None:
    modules = _modules()
    reference = copy.deepcopy(modules)
    source, target = _batch()
    losses = train_step(modules, source, target, get_adversarial_loss("lsgan"), 10.0, bf16=False, lambda_adv=0.0)
    assert set(losses) == {"loss_g", "loss_g_l1"}
    for before, after in zip(reference.discriminator.parameters(), modules.discriminator.parameters(), strict=True):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    # the generator took exactly one SGD step on 10 * L1
    reference.optimizer_g = torch.optim.SGD(reference.generator.parameters(), lr=0.1)
    loss = 10.0 * l1_loss(reference.generator(source), target)
    loss.backward()
    reference.optimizer_g.step()
    torch.testing.assert_close(losses["loss_g"], loss.detach())
    for expected, got in zip(reference.generator.parameters(), modules.generator.parameters(), strict=True):
        torch.testing.assert_close(got, expected)


def test_lambda_adv_weights_the_adversarial_term() -> None:
    source, target = _batch()
    adversarial = get_adversarial_loss("lsgan")
    one = train_step(_modules(), source, target, adversarial, 10.0, bf16=False, lambda_adv=1.0)
    half = train_step(_modules(), source, target, adversarial, 10.0, bf16=False, lambda_adv=0.5)
    torch.testing.assert_close(one["loss_g_adversarial"], half["loss_g_adversarial"])
    torch.testing.assert_close(one["loss_d"], half["loss_d"])
    torch.testing.assert_close(one["loss_g"], one["loss_g_adversarial"] + 10.0 * one["loss_g_l1"])
    torch.testing.assert_close(half["loss_g"], 0.5 * half["loss_g_adversarial"] + 10.0 * half["loss_g_l1"])
