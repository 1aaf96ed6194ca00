"""pix2pix weight initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medxlate.errors import ConfigError
from medxlate.models import init_weights


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(8, 64, 3), nn.BatchNorm3d(64), nn.ConvTranspose2d(64, 64, 4), nn.InstanceNorm2d(64), nn.Linear(64, 32)
    )


def test_normal_init_as_pix2pix() -> None:
    torch.manual_seed(0)
    net = _net()
    assert init_weights(net, "normal", 0.02) is net
    conv, bn, conv_t, _, linear = net
    for layer in (conv, conv_t):
        w = layer.weight.detach()
        torch.testing.assert_close(w.mean(), torch.tensor(0.0), atol=1e-3, rtol=0)
        torch.testing.assert_close(w.std(), torch.tensor(0.02), atol=1e-3, rtol=0)
        torch.testing.assert_close(layer.bias.detach(), torch.zeros_like(layer.bias))
    torch.testing.assert_close(bn.weight.detach().mean(), torch.tensor(1.0), atol=1e-2, rtol=0)
    torch.testing.assert_close(bn.bias.detach(), torch.zeros(64))
    torch.testing.assert_close(linear.bias.detach(), torch.zeros(32))


@pytest.mark.parametrize("scheme", ["xavier", "kaiming", "orthogonal"])
def test_other_schemes_run_and_zero_biases(scheme: str) -> None:
    net = init_weights(_net(), scheme, 0.02)
    assert all(torch.isfinite(p).all() for p in net.parameters())
    torch.testing.assert_close(net[0].bias.detach(), torch.zeros(64))


def test_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match=r"parameter 'init' got 'xavir'; did you mean 'xavier'\?"):
        init_weights(_net(), "xavir")
