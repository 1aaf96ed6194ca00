"""2D -> 3D generator in the spirit of X2CT-GAN (Ying et al., CVPR 2019): radiographs in, a CT volume out.

Architecture (layers from MONAI's dimension-generic factories)::

    per view v:  2D encoder  E_v: level i = Conv 4/2/1 (+ norm) + LeakyReLU(0.2)  -> (B, C_i, s_i, s_i)
    lift:        1x1 Conv2d C_i -> C_i * s_i, channels reshaped to depth        -> (B, C_i, s_i, s_i, s_i)
    to grid:     permute/flip the view's (depth, row, column) axes onto the volume's (X, Y, Z)
    fuse:        mean over views, at every level (the skip connections cross the lift)
    3D decoder:  level i = ReLU + ConvT3d 4/2/1 (+ norm) on cat[fused skip_i, deeper]; last: Tanh

Axis convention of the lift: the depth axis of a lifted feature volume runs along the view's beam,
from the source side to the detector side (a parallel-beam approximation of the cone). The output
grid is the model grid, RAS-oriented (index ``x`` towards the patient's right, ``y`` anterior,
``z`` superior). Image rows run superior -> inferior and columns follow
:mod:`medxlate.xray.geometry`'s display convention, so each view's ``(depth, row, column)`` maps to
a signed permutation of ``(X, Y, Z)``; only views at multiples of 90 degrees (PA, AP, LL, RL) have
one, which is what biplanar fusion needs.

Input: the views stacked on the channel axis, ``(B, n_views * in_channels, S, S)`` in the order of
``views``; output ``(B, out_channels, S, S, S)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Act, Conv
from torch import nn

from medxlate.errors import ConfigError, GeometryError
from medxlate.models.layers import check_input, check_int, check_size, conv_bias, make_norm, monai_norm_name
from medxlate.models.registry import GENERATORS
from medxlate.models.weights import init_weights
from medxlate.xray.geometry import Geometry

__all__ = ["X2CTGenerator", "view_axes"]

_NAME = "generator 'x2ct'"


def view_axes(view: str | float) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Where a view's ``(depth, row, column)`` axes go in the RAS-oriented model grid.

    Args:
        view: a named view or an angle (multiple of 90 degrees).

    Returns:
        ``(axes, flips)``: ``axes[k]`` is the grid axis (0 = X, 1 = Y, 2 = Z) of the view's k-th axis
        and ``flips[k]`` whether it runs against that grid axis.

    Raises:
        ConfigError: for a view that is not axis-aligned.
    """
    geometry = Geometry(sdd_mm=2.0, sad_mm=1.0, detector_shape=(1, 1), pixel_mm=1.0, view=view)
    to_source, column, row = geometry.frame()
    axes, flips = [], []
    for direction in (-to_source, row, column):  # depth runs source -> detector
        axis = int(direction.abs().argmax())
        if abs(abs(float(direction[axis])) - 1.0) > 1e-9:
            raise ConfigError(f"{_NAME}: view {view!r} is not a multiple of 90 degrees; cannot fuse it on the grid")
        axes.append(axis)
        flips.append(float(direction[axis]) < 0)
    return (axes[0], axes[1], axes[2]), (flips[0], flips[1], flips[2])


def _to_grid(feature: torch.Tensor, axes: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> torch.Tensor:
    """``(B, C, depth, rows, cols)`` -> ``(B, C, X, Y, Z)`` by the view's signed axis permutation."""
    flip_dims = [2 + k for k in range(3) if flips[k]]
    feature = feature.flip(flip_dims) if flip_dims else feature
    order = [0, 1] + [2 + axes.index(g) for g in range(3)]  # grid axis g takes the view axis that maps to it
    return feature.permute(order)


@GENERATORS.register("x2ct")
class X2CTGenerator(nn.Module):
    """Radiograph(s) -> CT volume generator; single-view (``views=("PA",)``) or biplanar.

    Args:
        spatial_dims: must be 3 (the output's dimensionality).
        in_channels: channels per view (1 for a radiograph).
        out_channels: channels of the volume.
        views: the views in input order (named or angles, multiples of 90 degrees).
        image_size: ``S``, the side of the square views and of the cubic output; a multiple of
            ``2**num_downs``.
        num_downs: encoder/decoder levels.
        ngf: channels of the outermost level.
        max_mult: cap on the width multiplier.
        norm: ``"batch"``, ``"instance"`` (default) or ``"none"``.

    Raises:
        ConfigError: for an invalid hyper-parameter or a view that is not axis-aligned.

    Example:
        >>> g = X2CTGenerator(3, 1, 1, views=("PA", "LL"), image_size=16, num_downs=3, ngf=4)
        >>> g(torch.zeros(1, 2, 16, 16)).shape
        torch.Size([1, 1, 16, 16, 16])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        views: Sequence[str | float] = ("PA",),
        image_size: int = 128,
        num_downs: int = 5,
        ngf: int = 16,
        max_mult: int = 8,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ConfigError(f"{_NAME}: spatial_dims={spatial_dims!r}; expected 3 (views in, a volume out)")
        if isinstance(views, str) or not views:
            raise ConfigError(f"{_NAME}: parameter 'views' got {views!r}; expected a list of views, e.g. ['PA', 'LL']")
        self.in_channels = check_int(in_channels, "in_channels", _NAME)
        self.out_channels = check_int(out_channels, "out_channels", _NAME)
        self.num_downs = check_size(num_downs, "num_downs", _NAME)
        self.image_size = check_int(image_size, "image_size", _NAME)
        if image_size % 2**num_downs:
            raise ConfigError(f"{_NAME}: image_size={image_size} is not a multiple of 2**num_downs={2**num_downs}")
        check_size(ngf, "ngf", _NAME)
        check_size(max_mult, "max_mult", _NAME)
        monai_norm_name(norm, _NAME)
        self.views = tuple(views)
        self.view_frames = [view_axes(v) for v in self.views]
        widths = [ngf * min(2**level, max_mult) for level in range(num_downs)]
        self.widths = widths
        bias = conv_bias(norm)
        conv2, conv3t = Conv[Conv.CONV, 2], Conv[Conv.CONVTRANS, 3]

        def block(layers: list[nn.Module], channels: int, dims: int, with_norm: bool) -> nn.Sequential:
            layer = make_norm(norm, dims, channels) if with_norm else None
            return nn.Sequential(*layers, *([] if layer is None else [layer]))

        self.encoders = nn.ModuleList()
        for _ in self.views:
            levels = nn.ModuleList()
            for level in range(num_downs):
                c_in = in_channels if level == 0 else widths[level - 1]
                conv = conv2(c_in, widths[level], kernel_size=4, stride=2, padding=1, bias=bias)
                levels.append(
                    nn.Sequential(block([conv], widths[level], 2, level > 0), Act[Act.LEAKYRELU](negative_slope=0.2))
                )
            self.encoders.append(levels)
        # one 1x1 projection per view and level: C_i -> C_i * depth_i channels, reshaped to depth
        depths = [image_size // 2 ** (level + 1) for level in range(num_downs)]
        self.lift = nn.ModuleList(
            nn.ModuleList(conv2(widths[i], widths[i] * depths[i], kernel_size=1) for i in range(num_downs))
            for _ in self.views
        )
        self.decoder = nn.ModuleList()
        for level in range(num_downs):
            c_in = widths[level] if level == num_downs - 1 else 2 * widths[level]
            if level == 0:
                layers: list[nn.Module] = [Act[Act.RELU](), conv3t(c_in, out_channels, 4, 2, 1), Act[Act.TANH]()]
                self.decoder.append(nn.Sequential(*layers))
            else:
                up = conv3t(c_in, widths[level - 1], kernel_size=4, stride=2, padding=1, bias=bias)
                self.decoder.append(block([Act[Act.RELU](), up], widths[level - 1], 3, True))
        init_weights(self, "normal", 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct a volume from the views.

        Args:
            x: ``(B, n_views * in_channels, S, S)`` views in ``[-1, 1]``, ``S = image_size``.

        Returns:
            ``(B, out_channels, S, S, S)`` in ``[-1, 1]`` on the RAS-oriented model grid.

        Raises:
            GeometryError: for a wrong rank, channel count or size.
        """
        check_input(x, 2, len(self.views) * self.in_channels, _NAME)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise GeometryError(
                f"{_NAME}: views of shape {tuple(x.shape[-2:])}; expected ({self.image_size}, {self.image_size})"
            )
        fused: list[torch.Tensor] = [torch.zeros(())] * self.num_downs
        for v, (encoder, lift, (axes, flips)) in enumerate(
            zip(self.encoders, self.lift, self.view_frames, strict=True)
        ):
            h = x[:, v * self.in_channels : (v + 1) * self.in_channels]
            for level in range(self.num_downs):
                h = encoder[level](h)  # (B, C_i, s_i, s_i)
                b, c, s, _ = h.shape
                lifted = lift[level](h).reshape(b, c, s, s, s)  # channels -> (C_i, depth); (B, C_i, d, rows, cols)
                fused[level] = fused[level] + _to_grid(lifted, axes, flips) / len(self.views)
        y = self.decoder[-1](fused[-1])
        for level in range(self.num_downs - 2, -1, -1):
            y = self.decoder[level](torch.cat([fused[level], y], dim=1))  # (B, 2 C_i, ...) -> up
        return y
