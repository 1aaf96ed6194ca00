"""Adversarial losses on hand-made logits, and the pix2pix L1 weighting."""

from __future__ import annotations

import pytest
import torch

from medxlate.errors import ConfigError, GeometryError, RegistryError
from medxlate.models import AdversarialLoss, get_adversarial_loss, l1_loss, pix2pix_generator_loss

REAL = torch.tensor([[2.0, 0.5], [-1.0, 0.0]], dtype=torch.float64)
FAKE = torch.tensor([[-2.0, 0.0], [1.0, 0.5]], dtype=torch.float64)


def test_get_adversarial_loss_returns_stateless_objects() -> None:
    for name in ("lsgan", "vanilla", "hinge"):
        loss = get_adversarial_loss(name)
        assert isinstance(loss, AdversarialLoss) and loss.name == name


def test_lsgan_perfect_discriminator_has_zero_loss() -> None:
    lsgan = get_adversarial_loss("lsgan")
    d = lsgan.discriminator_loss(torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3))
    torch.testing.assert_close(d, torch.tensor(0.0))
    torch.testing.assert_close(lsgan.generator_loss(torch.ones(2, 1, 3, 3)), torch.tensor(0.0))


def test_lsgan_formulas() -> None:
    lsgan = get_adversarial_loss("lsgan")
    # real: (1, 0.25, 4, 1) -> 1.5625; fake: (4, 0, 1, 0.25) -> 1.3125
    torch.testing.assert_close(lsgan.discriminator_loss(REAL, FAKE), torch.tensor(1.5625 + 1.3125, dtype=torch.float64))
    # (fake - 1)^2: (9, 1, 0, 0.25) -> 2.5625; no LeakyReLU applied (MONAI's default would)
    torch.testing.assert_close(lsgan.generator_loss(FAKE), torch.tensor(2.5625, dtype=torch.float64))


def test_vanilla_matches_bce_formula() -> None:
    vanilla = get_adversarial_loss("vanilla")
    sig = torch.sigmoid
    d_expected = -torch.log(sig(REAL)).mean() - torch.log(1 - sig(FAKE)).mean()
    torch.testing.assert_close(vanilla.discriminator_loss(REAL, FAKE), d_expected)
    torch.testing.assert_close(vanilla.generator_loss(FAKE), -torch.log(sig(FAKE)).mean())


def test_vanilla_is_stable_for_large_logits() -> None:
    vanilla = get_adversarial_loss("vanilla")
    fake = torch.tensor([-200.0, -200.0], requires_grad=True)
    loss = vanilla.generator_loss(fake)
    loss.backward()
    torch.testing.assert_close(loss, torch.tensor(200.0))
    assert fake.grad is not None
    torch.testing.assert_close(fake.grad, torch.tensor([-0.5, -0.5]))  # a sigmoid + BCELoss gives 0 here


def test_hinge_formulas() -> None:
    hinge = get_adversarial_loss("hinge")
    # relu(1 - real): (0, 0.5, 2, 1) -> 0.875; relu(1 + fake): (0, 1, 2, 1.5) -> 1.125
    torch.testing.assert_close(hinge.discriminator_loss(REAL, FAKE), torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(hinge.generator_loss(FAKE), torch.tensor(0.125, dtype=torch.float64))
    # beyond the margin the discriminator loss is exactly zero (MONAI's tanh version never is)
    confident = hinge.discriminator_loss(torch.full((4,), 3.0), torch.full((4,), -3.0))
    torch.testing.assert_close(confident, torch.tensor(0.0))


def test_pix2pix_generator_loss_weights_l1_by_lambda() -> None:
    fake = torch.zeros(2, 1, 4, 4, requires_grad=True)
    real = torch.full((2, 1, 4, 4), 0.1)
    logits = torch.ones(2, 1, 2, 2)  # lsgan G loss 0 on logits of 1
    total, parts = pix2pix_generator_loss(logits, fake, real, "lsgan")
    torch.testing.assert_close(parts["l1"], torch.tensor(0.1))
    torch.testing.assert_close(parts["adversarial"], torch.tensor(0.0))
    torch.testing.assert_close(total, torch.tensor(10.0))
    total.backward()
    assert fake.grad is not None
    torch.testing.assert_close(fake.grad, torch.full_like(fake, -100.0 / fake.numel()))

    hinge = get_adversarial_loss("hinge")
    total, parts = pix2pix_generator_loss(logits, fake, real, hinge, lambda_l1=10.0)
    torch.testing.assert_close(total, torch.tensor(-1.0 + 10.0 * 0.1))
    total, _ = pix2pix_generator_loss(logits, fake, real, hinge, lambda_l1=0.0)
    torch.testing.assert_close(total, torch.tensor(-1.0))


def test_masked_l1_averages_inside_the_mask_only() -> None:
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[2.0, 4.0], [6.0, 8.0]]]])
    mask = torch.tensor([[[[True, False], [False, True]]]])  # (1, 1, 2, 2), broadcast over channels
    torch.testing.assert_close(l1_loss(pred, target, mask), torch.tensor((1 + 7 + 2 + 8) / 4))
    torch.testing.assert_close(l1_loss(pred, target), target.mean())
    torch.testing.assert_close(l1_loss(pred, target, torch.zeros(1, 1, 2, 2)), torch.tensor(0.0))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_lambda(bad: float) -> None:
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ConfigError, match="parameter 'lambda_l1' got"):
        pix2pix_generator_loss(x, x, x, "lsgan", lambda_l1=bad)


def test_shape_errors_and_unknown_loss_name() -> None:
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(GeometryError, match=r"pred shape \(1, 1, 2, 2\) != target shape \(1, 1, 2, 3\)"):
        l1_loss(x, torch.zeros(1, 1, 2, 3))
    with pytest.raises(GeometryError, match="does not broadcast"):
        l1_loss(x, x, torch.ones(1, 1, 3, 3))
    with pytest.raises(GeometryError, match="would enlarge"):
        l1_loss(x, x, torch.ones(2, 1, 2, 2))
    with pytest.raises(RegistryError, match="did you mean 'hinge'"):
        pix2pix_generator_loss(x, x, x, "hing")
