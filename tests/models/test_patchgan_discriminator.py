"""PatchGAN: equals the pix2pix NLayerDiscriminator, 70-pixel receptive field, output grid.

``RefNLayerDiscriminator`` transcribes ``NLayerDiscriminator`` of junyanz/pytorch-CycleGAN-and-pix2pix
(models/networks.py) with plain torch layers, 2D only.
"""

from __future__ import annotations

import functools

import pytest
import torch
from monai.networks.nets import PatchDiscriminator
from torch import nn

from medxlate.errors import ConfigError, GeometryError
from medxlate.models import PatchGANDiscriminator


class RefNLayerDiscriminator(nn.Module):
    """pix2pix ``NLayerDiscriminator``, transcribed."""

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm_layer: type[nn.Module] | functools.partial[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if isinstance(norm_layer, functools.partial):
            use_bias = norm_layer.func == nn.InstanceNorm2d
        else:
            use_bias = norm_layer == nn.InstanceNorm2d
        kw, padw = 4, 1
        sequence: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            sequence += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=use_bias),
                norm_layer(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias),
            norm_layer(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
        ]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


REF_INSTANCE = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_70x70_parameter_count_matches_reference() -> None:
    with torch.device("meta"):
        ours = PatchGANDiscriminator(spatial_dims=2, in_channels=6)
        ref = RefNLayerDiscriminator(6, ndf=64, n_layers=3)
    assert n_params(ours) == n_params(ref) == 2_768_705
    assert f"{n_params(ours) / 1e6:.3f}" == "2.769"  # as printed by pix2pix for basic D, input_nc=6


def test_3d_parameter_count_matches_formula() -> None:
    with torch.device("meta"):
        disc = PatchGANDiscriminator(spatial_dims=3, in_channels=2, ndf=16)
    k = 4**3
    expected = (2 * 16 * k + 16) + (16 * 32 * k + 2 * 32) + (32 * 64 * k + 2 * 64) + (64 * 128 * k + 2 * 128)
    expected += 128 * 1 * k + 1
    assert n_params(disc) == expected


@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_same_function_as_reference_with_copied_weights(n_layers: int, norm: str) -> None:
    torch.manual_seed(0)
    ref = RefNLayerDiscriminator(
        3, ndf=4, n_layers=n_layers, norm_layer=nn.BatchNorm2d if norm == "batch" else REF_INSTANCE
    )
    ours = PatchGANDiscriminator(2, in_channels=3, ndf=4, n_layers=n_layers, norm=norm)
    ref_state, our_state = ref.state_dict(), ours.state_dict()
    assert [v.shape for v in ref_state.values()] == [v.shape for v in our_state.values()]  # same layers, same order
    ours.load_state_dict(dict(zip(our_state, ref_state.values(), strict=True)))
    x = torch.randn(2, 3, 32, 24)

    for train in (True, False):
        ref.train(train)
        ours.train(train)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), ref(x))


def test_monai_widths_diverge_from_reference_beyond_three_layers() -> None:
    """Why n_layers is capped at 3: MONAI keeps doubling the width where pix2pix stops at ndf * 8."""
    with torch.device("meta"):
        monai_d = PatchDiscriminator(spatial_dims=2, channels=64, in_channels=6, num_layers_d=4)
        ref = RefNLayerDiscriminator(6, ndf=64, n_layers=4)
    assert n_params(monai_d) != n_params(ref)
    with pytest.raises(ConfigError, match=r"parameter 'n_layers' got 4; expected 1, 2 or 3"):
        PatchGANDiscriminator(2, in_channels=6, n_layers=4)


def _receptive_extent(disc: PatchGANDiscriminator, spatial: tuple[int, ...]) -> list[int]:
    """Extent, per axis, of the input region that influences the central output logit."""
    disc = disc.double().eval()  # eval: batch norm must not mix positions through batch statistics
    x = torch.randn(1, disc.in_channels, *spatial, dtype=torch.float64, requires_grad=True)
    logits = disc(x)
    centre = tuple(s // 2 for s in logits.shape[2:])
    logits[(0, 0, *centre)].backward()
    assert x.grad is not None
    influence = x.grad.abs().sum(dim=(0, 1)) > 0
    extents = []
    for axis in range(influence.ndim):
        other = tuple(a for a in range(influence.ndim) if a != axis)
        hit = influence.any(dim=other).nonzero().flatten()
        assert int(hit.min()) > 0 and int(hit.max()) < spatial[axis] - 1  # not clipped by the border
        extents.append(int(hit.max() - hit.min()) + 1)
    return extents


@pytest.mark.parametrize(("n_layers", "expected"), [(1, 16), (2, 34), (3, 70)])
def test_receptive_field_2d(n_layers: int, expected: int) -> None:
    torch.manual_seed(0)
    disc = PatchGANDiscriminator(2, in_channels=2, ndf=4, n_layers=n_layers)
    assert disc.receptive_field == expected
    size = 32 * n_layers  # large enough that the central logit's field is not clipped
    assert _receptive_extent(disc, (size, size)) == [expected, expected]


def test_receptive_field_3d() -> None:
    torch.manual_seed(0)
    disc = PatchGANDiscriminator(3, in_channels=2, ndf=2, n_layers=2)
    assert _receptive_extent(disc, (48, 48, 48)) == [34, 34, 34] == [disc.receptive_field] * 3


def test_output_grid_and_features() -> None:
    disc = PatchGANDiscriminator(2, in_channels=2, ndf=4)
    x = torch.randn(2, 2, 64, 32)
    logits, features = disc.forward_with_features(x)
    assert logits.shape == (2, 1, 64 // 8 - 2, 32 // 8 - 2)
    assert [f.shape[1] for f in features] == [4, 8, 16, 32]
    torch.testing.assert_close(disc(x), logits)


def test_input_too_small_or_wrong_channels() -> None:
    disc = PatchGANDiscriminator(2, in_channels=2, ndf=4)
    with pytest.raises(GeometryError, match=r"spatial size \(32, 16\).*at least 24"):
        disc(torch.zeros(1, 2, 32, 16))
    with pytest.raises(GeometryError, match=r"input shape \(1, 1, 32, 32\)"):
        disc(torch.zeros(1, 1, 32, 32))
