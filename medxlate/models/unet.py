"""The pix2pix U-Net generator, for any ``spatial_dims``.

Reproduces ``UnetGenerator``/``UnetSkipConnectionBlock`` of junyanz/pytorch-CycleGAN-and-pix2pix
(Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017),
written as an explicit encoder/decoder loop instead of nested blocks. Level ``i`` (0 = outermost)
has ``ngf * min(2**i, max_mult)`` channels; every level halves the spatial size with a 4/2/1
convolution and the decoder doubles it back with a 4/2/1 transposed convolution::

    down_0 : Conv                                (no activation before, no norm after)
    down_i : LeakyReLU(0.2) - Conv - Norm        (0 < i < n-1)
    down_n-1 (innermost): LeakyReLU(0.2) - Conv  (no norm: the bottleneck may be 1 voxel)
    up_n-1 : ReLU - ConvT - Norm
    up_i   : ReLU - ConvT(cat[skip_i, up_i+1]) - Norm [- Dropout]   (0 < i < n-1)
    up_0   : ReLU - ConvT(cat[skip_0, up_1]) (with bias) - Tanh

Dropout sits on the intermediate decoder levels whose input and output widths are both the
saturated ``ngf * max_mult`` (for the defaults: levels 4, 5, 6, the three ``ngf*8`` blocks the
reference builds in its loop). With the defaults (``num_downs=8, ngf=64, max_mult=8, norm="batch",
dropout=0.5``) this is pix2pix's ``unet_256``: 54,413,955 parameters for 3 -> 3 channels (the
reference prints 54.414 M).

Differences from the reference, all deliberate:

* ``num_downs`` may be below 5 (the reference always builds at least 5 levels); ``max_mult`` is a
  parameter (the reference hard-codes 8).
* ``norm="none"`` keeps the conv biases (the reference drops them, see ``layers.conv_bias``).
* The reference's in-place LeakyReLU also overwrites the skip tensor; since every decoder level
  starts with ReLU and ``relu(leaky_relu(x)) == relu(x)``, this has no effect on outputs or
  gradients, so we use out-of-place activations.
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
)
from medxlate.models.registry import GENERATORS
from medxlate.models.weights import init_weights

__all__ = ["UNetGenerator"]

_NAME = "generator 'unet'"


@GENERATORS.register("unet")
class UNetGenerator(nn.Module):
    """pix2pix U-Net generator (``unet_256`` with the defaults), 1D/2D/3D.

    Weights are initialised as in pix2pix (``init_weights(self, "normal", 0.02)``).

    Args:
        spatial_dims: number of spatial dimensions (2 for slices, 3 for volumes; 1 also works).
        in_channels: channels of the source image.
        out_channels: channels of the translated image.
        num_downs: number of down-sampling levels; inputs must have every spatial size divisible
            by ``2**num_downs`` (256 for the default 8). At least 2.
        ngf: channels of the outermost level.
        max_mult: cap on the width multiplier (level ``i`` has ``ngf * min(2**i, max_mult)``).
        norm: ``"batch"`` (pix2pix default), ``"instance"`` or ``"none"``.
        dropout: dropout probability on the saturated intermediate decoder levels (0 disables it;
            pix2pix trains with 0.5 and uses it as the noise source).

    Raises:
        ConfigError: for an invalid hyper-parameter, naming it and the value received.

    Example:
        >>> g = UNetGenerator(spatial_dims=2, in_channels=1, out_channels=1, num_downs=5, ngf=8)
        >>> g(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        num_downs: int = 8,
        ngf: int = 64,
        max_mult: int = 8,
        norm: str = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims, _NAME)
        self.in_channels = check_int(in_channels, "in_channels", _NAME)
        self.out_channels = check_int(out_channels, "out_channels", _NAME)
        self.num_downs = check_size(num_downs, "num_downs", _NAME)
        check_size(ngf, "ngf", _NAME)
        check_size(max_mult, "max_mult", _NAME)
        monai_norm_name(norm, _NAME)
        dropout = check_probability(dropout, "dropout", _NAME)

        widths = [ngf * min(2**level, max_mult) for level in range(num_downs)]
        conv = Conv[Conv.CONV, spatial_dims]
        conv_t = Conv[Conv.CONVTRANS, spatial_dims]
        bias = conv_bias(norm)
        innermost = num_downs - 1

        def norm_layers(channels: int) -> list[nn.Module]:
            layer = make_norm(norm, spatial_dims, channels)
            return [] if layer is None else [layer]

        self.down = nn.ModuleList()
        for level in range(num_downs):
            c_in = in_channels if level == 0 else widths[level - 1]
            layers: list[nn.Module] = [] if level == 0 else [Act[Act.LEAKYRELU](negative_slope=0.2)]
            layers.append(conv(c_in, widths[level], kernel_size=4, stride=2, padding=1, bias=bias))
            if 0 < level < innermost:
                layers += norm_layers(widths[level])
            self.down.append(nn.Sequential(*layers))

        self.up = nn.ModuleList()
        for level in range(num_downs):
            # the innermost level gets only its own down output; the others get [skip, deeper output]
            c_in = widths[level] if level == innermost else 2 * widths[level]
            layers = [Act[Act.RELU]()]
            if level == 0:
                layers += [conv_t(c_in, out_channels, kernel_size=4, stride=2, padding=1), Act[Act.TANH]()]
            else:
                c_out = widths[level - 1]
                layers.append(conv_t(c_in, c_out, kernel_size=4, stride=2, padding=1, bias=bias))
                layers += norm_layers(c_out)
                saturated = widths[level] == widths[level - 1] == ngf * max_mult
                if level < innermost and saturated and dropout > 0:
                    layers.append(Dropout[Dropout.DROPOUT, 1](dropout))
            self.up.append(nn.Sequential(*layers))

        init_weights(self, "normal", 0.02)

    @property
    def required_multiple(self) -> int:
        """Every spatial size of the input must be a multiple of this (``2**num_downs``)."""
        return 2**self.num_downs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x``.

        Args:
            x: source image, shape ``(B, in_channels, *spatial)``, every spatial size a multiple of
                ``2**num_downs``; intensities are expected in ``[-1, 1]``.

        Returns:
            Translated image, shape ``(B, out_channels, *spatial)``, values in ``[-1, 1]`` (tanh).

        Raises:
            GeometryError: if the input rank, channels or spatial sizes do not fit, naming the
                shape received and the required multiple.
        """
        check_input(x, self.spatial_dims, self.in_channels, _NAME, multiple=self.required_multiple)
        skips: list[torch.Tensor] = []
        for down in self.down:
            x = down(x)  # level i: (B, widths[i], *spatial / 2**(i+1))
            skips.append(x)
        y = self.up[-1](skips[-1])  # (B, widths[n-2], *spatial / 2**(n-1))
        for level in range(self.num_downs - 2, -1, -1):
            y = torch.cat([skips[level], y], dim=1)  # (B, 2 * widths[level], *spatial / 2**(level+1))
            y = self.up[level](y)
        return y
