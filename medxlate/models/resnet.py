"""The CycleGAN/pix2pix ResNet generator, for any ``spatial_dims``.

Reproduces ``ResnetGenerator``/``ResnetBlock`` of junyanz/pytorch-CycleGAN-and-pix2pix (after
Johnson et al., "Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016),
layer for layer and in the same order, so a state dict of the reference loads under the same keys
(``model.<i>...``, ``model.<i>.conv_block.<j>...``)::

    ReflectionPad(3) - Conv 7 (ngf) - Norm - ReLU
    2 x [Conv 3/2/1 (x2 channels) - Norm - ReLU]
    n_blocks x ResNetBlock(ngf * 4):
        x + [ReflectionPad(1) - Conv 3 - Norm - ReLU [- Dropout] - ReflectionPad(1) - Conv 3 - Norm](x)
    2 x [ConvT 3/2/1, output_padding 1 (/2 channels) - Norm - ReLU]
    ReflectionPad(3) - Conv 7 (out_channels, with bias) - Tanh

Convolutions followed by batch norm have no bias (as in the reference: ``use_bias`` is true only for
instance norm; ``norm="none"`` keeps the biases, see ``layers.conv_bias``). ``n_blocks=9`` is the
reference's ``resnet_9blocks``, ``n_blocks=6`` its ``resnet_6blocks``; with ``ngf=64``,
``norm="instance"`` and 3 -> 3 channels, ``resnet_9blocks`` has 11,378,179 parameters (the
reference prints 11.378 M).
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Act, Conv, Dropout
from torch import nn

from medxlate.models.layers import (
    check_input,
    check_int,
    check_probability,
    check_size,
    check_spatial_dims,
    conv_bias,
    make_norm,
    monai_norm_name,
    reflection_pad,
)
from medxlate.models.registry import GENERATORS
from medxlate.models.weights import init_weights

__all__ = ["ResNetBlock", "ResNetGenerator"]

_NAME = "generator 'resnet'"
_DOWNSAMPLINGS = 2  # stride-2 convolutions before the residual blocks (and transposed ones after)


def _normed(layer: nn.Module, norm: str, spatial_dims: int, channels: int) -> list[nn.Module]:
    """``[layer, norm layer]``, or ``[layer]`` for ``norm="none"``."""
    norm_layer = make_norm(norm, spatial_dims, channels)
    return [layer] if norm_layer is None else [layer, norm_layer]


class ResNetBlock(nn.Module):
    """Residual block ``x + conv_block(x)`` with reflection padding (the reference's ``ResnetBlock``).

    Args:
        spatial_dims: 1, 2 or 3.
        channels: input and output channels.
        norm: ``"batch"``, ``"instance"`` or ``"none"`` (already validated).
        dropout: dropout probability after the first convolution (0: no dropout layer at all, as in
            the reference with ``use_dropout=False``, which shifts the second convolution's index).
    """

    def __init__(self, spatial_dims: int, channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        bias = conv_bias(norm)
        layers: list[nn.Module] = [reflection_pad(spatial_dims, 1)]
        layers += _normed(conv(channels, channels, kernel_size=3, bias=bias), norm, spatial_dims, channels)
        layers.append(Act[Act.RELU]())
        if dropout > 0:
            layers.append(Dropout[Dropout.DROPOUT, 1](dropout))
        layers.append(reflection_pad(spatial_dims, 1))
        layers += _normed(conv(channels, channels, kernel_size=3, bias=bias), norm, spatial_dims, channels)
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + conv_block(x)``, same shape as ``x``."""
        return x + self.conv_block(x)


@GENERATORS.register("resnet")
class ResNetGenerator(nn.Module):
    """CycleGAN ResNet generator (``resnet_9blocks`` with the defaults), 1D/2D/3D.

    Weights are initialised as in pix2pix (``init_weights(self, "normal", 0.02)``).

    Args:
        spatial_dims: number of spatial dimensions (2 for slices, 3 for volumes; 1 also works).
        in_channels: channels of the source image.
        out_channels: channels of the translated image.
        ngf: channels of the first convolution (the residual blocks have ``4 * ngf``).
        n_blocks: number of residual blocks (9: ``resnet_9blocks``, 6: ``resnet_6blocks``).
        norm: ``"instance"`` (CycleGAN default), ``"batch"`` (pix2pix default) or ``"none"``.
        dropout: dropout probability inside the residual blocks (0, CycleGAN's default, builds no
            dropout layer; pix2pix trains with 0.5).

    Raises:
        ConfigError: for an invalid hyper-parameter, naming it and the value received.

    Example:
        >>> g = ResNetGenerator(spatial_dims=2, in_channels=1, out_channels=1, ngf=8, n_blocks=2)
        >>> g(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims, _NAME)
        self.in_channels = check_int(in_channels, "in_channels", _NAME)
        self.out_channels = check_int(out_channels, "out_channels", _NAME)
        check_size(ngf, "ngf", _NAME)
        check_int(n_blocks, "n_blocks", _NAME, minimum=0, maximum=64)
        monai_norm_name(norm, _NAME)
        dropout = check_probability(dropout, "dropout", _NAME)
        conv = Conv[Conv.CONV, spatial_dims]
        conv_t = Conv[Conv.CONVTRANS, spatial_dims]
        bias = conv_bias(norm)

        layers: list[nn.Module] = [reflection_pad(spatial_dims, 3)]
        layers += _normed(conv(in_channels, ngf, kernel_size=7, bias=bias), norm, spatial_dims, ngf)
        layers.append(Act[Act.RELU]())
        for i in range(_DOWNSAMPLINGS):
            c_in, c_out = ngf * 2**i, ngf * 2 ** (i + 1)
            down = conv(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=bias)
            layers += [*_normed(down, norm, spatial_dims, c_out), Act[Act.RELU]()]
        width = ngf * 2**_DOWNSAMPLINGS
        layers += [ResNetBlock(spatial_dims, width, norm, dropout) for _ in range(n_blocks)]
        for i in range(_DOWNSAMPLINGS):
            c_in, c_out = ngf * 2 ** (_DOWNSAMPLINGS - i), ngf * 2 ** (_DOWNSAMPLINGS - i - 1)
            up = conv_t(c_in, c_out, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias)
            layers += [*_normed(up, norm, spatial_dims, c_out), Act[Act.RELU]()]
        layers += [reflection_pad(spatial_dims, 3), conv(ngf, out_channels, kernel_size=7), Act[Act.TANH]()]
        self.model = nn.Sequential(*layers)

        init_weights(self, "normal", 0.02)

    @property
    def required_multiple(self) -> int:
        """Every spatial size of the input must be a multiple of this (``2**2``: two stride-2 levels)."""
        return 2**_DOWNSAMPLINGS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x``.

        Args:
            x: source image, shape ``(B, in_channels, *spatial)``, every spatial size a multiple of 4
                and at least 8 (the blocks' reflection padding needs 2 voxels at 1/4 resolution);
                intensities are expected in ``[-1, 1]``.

        Returns:
            Translated image, shape ``(B, out_channels, *spatial)``, values in ``[-1, 1]`` (tanh).

        Raises:
            GeometryError: if the input rank, channels or spatial sizes do not fit, naming the
                shape received and what is required.
        """
        check_input(x, self.spatial_dims, self.in_channels, _NAME, multiple=self.required_multiple, minimum=8)
        return self.model(x)
