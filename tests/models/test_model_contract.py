"""One contract over every registered generator and discriminator, in 2D and 3D, on tiny tensors."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from medxlate.models import (
    ADVERSARIAL_LOSSES,
    DISCRIMINATORS,
    GENERATORS,
    build_discriminator,
    build_generator,
    get_adversarial_loss,
    pix2pix_generator_loss,
)

# Tiny hyper-parameters for each registered model. A newly registered model must be added here,
# otherwise test_every_registered_model_is_covered fails: the contract applies to all of them.
TINY_GENERATORS: dict[str, dict[str, Any]] = {
    "unet": {"ngf": 4, "num_downs": 4, "max_mult": 2},  # max_mult=2 so a dropout level exists
    "resnet": {"ngf": 4, "n_blocks": 2, "dropout": 0.5},
}
# Generators whose input is not on the output's grid (views in, a volume out) have their own
# contract in tests/models/test_x2ct_generator.py.
LIFTING_GENERATORS: dict[str, dict[str, Any]] = {
    "x2ct": {"image_size": 16, "num_downs": 3, "ngf": 4},
}
TINY_DISCRIMINATORS: dict[str, dict[str, Any]] = {
    "patchgan": {"ndf": 4, "n_layers": 2},
}
SPATIAL = {2: (32, 32), 3: (16, 16, 16)}
DIMS = sorted(SPATIAL)


def test_every_registered_model_is_covered() -> None:
    assert set(GENERATORS.names()) == set(TINY_GENERATORS) | set(LIFTING_GENERATORS)
    assert set(DISCRIMINATORS.names()) == set(TINY_DISCRIMINATORS)


def _check_backward(module: torch.nn.Module, x: torch.Tensor, out: torch.Tensor) -> None:
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, param in module.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("spatial_dims", DIMS)
@pytest.mark.parametrize("name", sorted(TINY_GENERATORS))
def test_generator_contract(name: str, spatial_dims: int) -> None:
    torch.manual_seed(0)
    gen = build_generator(name, spatial_dims, in_channels=2, out_channels=1, **TINY_GENERATORS[name])
    x = torch.randn(2, 2, *SPATIAL[spatial_dims], requires_grad=True)

    y = gen(x)

    assert y.shape == (2, 1, *SPATIAL[spatial_dims])
    assert torch.isfinite(y).all()
    assert y.min() >= -1.0 and y.max() <= 1.0  # tanh output range
    _check_backward(gen, x, y)
    gen.eval()
    with torch.no_grad():
        torch.testing.assert_close(gen(x), gen(x), rtol=0, atol=0)


@pytest.mark.parametrize("spatial_dims", DIMS)
@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_contract(name: str, spatial_dims: int) -> None:
    torch.manual_seed(0)
    disc = build_discriminator(name, spatial_dims, in_channels=3, **TINY_DISCRIMINATORS[name])
    x = torch.randn(2, 3, *SPATIAL[spatial_dims], requires_grad=True)

    logits = disc(x)

    assert logits.ndim == spatial_dims + 2 and logits.shape[:2] == (2, 1)
    assert all(s >= 1 for s in logits.shape[2:])
    assert torch.isfinite(logits).all()
    _check_backward(disc, x, logits)
    disc.eval()
    with torch.no_grad():
        torch.testing.assert_close(disc(x), disc(x), rtol=0, atol=0)


@pytest.mark.parametrize("loss_name", ADVERSARIAL_LOSSES.names())
def test_one_pix2pix_step_updates_both_networks(loss_name: str) -> None:
    """Smoke test of how the pieces fit: D step on detached fakes, then G step through D."""
    torch.manual_seed(0)
    gen = build_generator("unet", 2, in_channels=1, out_channels=1, **TINY_GENERATORS["unet"])
    disc = build_discriminator("patchgan", 2, in_channels=2, **TINY_DISCRIMINATORS["patchgan"])
    adversarial = get_adversarial_loss(loss_name)
    source, target = torch.randn(2, 1, 32, 32), torch.rand(2, 1, 32, 32) * 2 - 1

    fake = gen(source)
    d_loss = adversarial.discriminator_loss(
        disc(torch.cat([source, target], dim=1)), disc(torch.cat([source, fake.detach()], dim=1))
    )
    d_loss.backward()
    assert all(p.grad is None for p in gen.parameters())  # fakes were detached
    disc.zero_grad()

    total, parts = pix2pix_generator_loss(disc(torch.cat([source, fake], dim=1)), fake, target, adversarial)
    total.backward()

    assert torch.isfinite(d_loss) and torch.isfinite(total)
    torch.testing.assert_close(total, parts["adversarial"] + 100.0 * parts["l1"])
    assert all(p.grad is not None for p in gen.parameters())
