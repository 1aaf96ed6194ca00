"""The U-Net generator against an independent copy of the pix2pix reference and a closed-form count.

``RefUnetGenerator`` is the transcription of ``UnetGenerator``/``UnetSkipConnectionBlock`` of
junyanz/pytorch-CycleGAN-and-pix2pix (models/networks.py) in ``tests/models/pix2pix_reference.py``,
plain torch layers, 2D only. Full-size networks are built on the meta device: parameters are counted
without allocating or running them.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medxlate.errors import GeometryError
from medxlate.models import UNetGenerator
from tests.models.pix2pix_reference import UnetGenerator as RefUnetGenerator
from tests.models.pix2pix_reference import UnetSkipConnectionBlock as RefUnetSkipConnectionBlock
from tests.models.pix2pix_reference import get_norm_layer

REF_INSTANCE = get_norm_layer("instance")


def unet_param_formula(
    in_c: int, out_c: int, num_downs: int, ngf: int, max_mult: int, spatial_dims: int, norm: str
) -> int:
    """Closed-form parameter count of the pix2pix U-Net (4^d kernels; BN has 2 params per channel)."""
    k = 4**spatial_dims
    w = [ngf * min(2**i, max_mult) for i in range(num_downs)]
    bias = int(norm != "batch")
    per_norm = 2 if norm == "batch" else 0
    n = num_downs
    total = in_c * w[0] * k + bias * w[0]  # outermost down conv
    for i in range(1, n):  # down convs (+ norm except innermost)
        total += w[i - 1] * w[i] * k + bias * w[i] + (per_norm * w[i] if i < n - 1 else 0)
    total += w[n - 1] * w[n - 2] * k + (bias + per_norm) * w[n - 2]  # innermost up conv + norm
    for i in range(1, n - 1):  # intermediate up convs on [skip, deeper]
        total += 2 * w[i] * w[i - 1] * k + (bias + per_norm) * w[i - 1]
    return total + 2 * w[0] * out_c * k + out_c  # outermost up conv, always with bias


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("channels", [3, 1])
def test_unet_256_parameter_count_matches_reference(channels: int) -> None:
    with torch.device("meta"):
        ours = UNetGenerator(spatial_dims=2, in_channels=channels, out_channels=channels)
        ref = RefUnetGenerator(channels, channels, num_downs=8, ngf=64, use_dropout=True)
    assert n_params(ours) == n_params(ref) == unet_param_formula(channels, channels, 8, 64, 8, 2, "batch")
    if channels == 3:
        assert n_params(ours) == 54_413_955
        assert f"{n_params(ours) / 1e6:.3f}" == "54.414"  # as printed by pix2pix for unet_256
    assert sum(isinstance(m, nn.Dropout) for m in ours.modules()) == 3
    assert sorted(p.shape for p in ours.parameters()) == sorted(p.shape for p in ref.parameters())


def test_unet_128_and_instance_norm_match_reference() -> None:
    with torch.device("meta"):
        ours = UNetGenerator(2, 3, 3, num_downs=7, norm="instance")
        ref = RefUnetGenerator(3, 3, num_downs=7, norm_layer=REF_INSTANCE, use_dropout=True)
    assert n_params(ours) == n_params(ref) == unet_param_formula(3, 3, 7, 64, 8, 2, "instance")


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_3d_parameter_count_matches_formula(norm: str) -> None:
    with torch.device("meta"):
        gen = UNetGenerator(spatial_dims=3, in_channels=1, out_channels=2, num_downs=6, ngf=16, norm=norm)
    assert n_params(gen) == unet_param_formula(1, 2, 6, 16, 8, 3, norm)
    assert isinstance(gen.down[0][0], nn.Conv3d) and isinstance(gen.up[0][1], nn.ConvTranspose3d)


def test_norm_none_keeps_bias_and_has_no_norm_layers() -> None:
    gen = UNetGenerator(2, 1, 1, num_downs=4, ngf=4, norm="none")
    convs = [m for m in gen.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(c.bias is not None for c in convs)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in gen.modules())


def _stateful(modules: nn.Module) -> list[nn.Module]:
    return [m for m in modules.children() if list(m.parameters()) or list(m.buffers())]


def _reference_levels(ref: RefUnetGenerator) -> list[tuple[list[nn.Module], list[nn.Module]]]:
    """(down layers, up layers) with state, per level from outermost, split at the up ReLU."""
    levels = []
    block: nn.Module | None = ref.model
    while block is not None:
        layers = list(block.model.children())
        split = next(i for i, m in enumerate(layers) if type(m) is nn.ReLU)
        down = [m for m in layers[:split] if _stateful_single(m)]
        up = [m for m in layers[split:] if _stateful_single(m)]
        levels.append((down, up))
        block = next((m for m in layers if isinstance(m, RefUnetSkipConnectionBlock)), None)
    return levels


def _stateful_single(m: nn.Module) -> bool:
    return not isinstance(m, RefUnetSkipConnectionBlock) and bool(list(m.parameters()) or list(m.buffers()))


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_same_function_as_reference_with_copied_weights(norm: str) -> None:
    """Copy the reference's weights level by level: outputs agree (skip order, norms, activations)."""
    torch.manual_seed(0)
    ref_norm = nn.BatchNorm2d if norm == "batch" else REF_INSTANCE
    ref = RefUnetGenerator(2, 1, num_downs=6, ngf=4, norm_layer=ref_norm)
    ours = UNetGenerator(2, in_channels=2, out_channels=1, num_downs=6, ngf=4, norm=norm, dropout=0.0)
    levels = _reference_levels(ref)
    assert len(levels) == len(ours.down) == 6
    for level, (ref_down, ref_up) in enumerate(levels):
        for src, dst in [
            *zip(ref_down, _stateful(ours.down[level]), strict=True),
            *zip(ref_up, _stateful(ours.up[level]), strict=True),
        ]:
            dst.load_state_dict(src.state_dict())
    x = torch.randn(2, 2, 64, 64)

    for train in (True, False):
        ref.train(train)
        ours.train(train)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref(x.clone()))


def test_dropout_is_active_in_training_only() -> None:
    torch.manual_seed(0)
    gen = UNetGenerator(2, 1, 1, num_downs=4, ngf=4, max_mult=2, norm="instance")
    assert sum(isinstance(m, nn.Dropout) for m in gen.modules()) == 1
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert not torch.equal(gen(x), gen(x))
        gen.eval()
        torch.testing.assert_close(gen(x), gen(x), rtol=0, atol=0)


def test_input_size_must_be_divisible() -> None:
    gen = UNetGenerator(2, 1, 1, num_downs=4, ngf=4)
    assert gen.required_multiple == 16  # read by training/inference to pad inputs
    with pytest.raises(GeometryError, match=r"spatial size \(32, 24\).*multiple of 16"):
        gen(torch.zeros(1, 1, 32, 24))
    with pytest.raises(GeometryError, match=r"input shape \(1, 3, 32, 32\)"):
        gen(torch.zeros(1, 3, 32, 32))
    with pytest.raises(GeometryError, match=r"input shape \(1, 1, 32, 32, 32\)"):
        gen(torch.zeros(1, 1, 32, 32, 32))
