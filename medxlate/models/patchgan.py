"""The pix2pix PatchGAN discriminator (70x70 by default), for any ``spatial_dims``.

Built on MONAI's :class:`monai.networks.nets.PatchDiscriminator`, which for ``num_layers_d`` in
1..3 is layer-for-layer the pix2pix ``NLayerDiscriminator`` (junyanz/pytorch-CycleGAN-and-pix2pix):

* conv 4/2/1 with bias + LeakyReLU(0.2), no norm (MONAI ``initial_conv``);
* ``n_layers - 1`` blocks conv 4/2/1 + norm + LeakyReLU(0.2), widths ``ndf*2, ndf*4``;
* one block conv 4/1/1 + norm + LeakyReLU(0.2), width ``ndf * 2**n_layers``;
* conv 4/1/1 to one channel with bias, no activation (the logits; MONAI ``final_conv``).

Conv bias follows the norm (none before batch norm), as in the reference; MONAI also applies the
pix2pix N(0, 0.02) / BN N(1, 0.02) initialisation (``normal_init``). It adds a ``Dropout(p=0)``
(identity) in each block, which has no parameters and no effect.

The one difference: the reference caps the width at ``ndf * 8``; MONAI keeps doubling. They agree
for ``n_layers <= 3`` only, so ``n_layers`` is limited to 1..3 (receptive fields 16, 34, 70).

The input is conditional: the source and the (real or generated) target concatenated on the channel
axis, so ``in_channels = source channels + target channels``.
"""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Act
from monai.networks.nets import PatchDiscriminator
from torch import nn

from medxlate.errors import ConfigError
from medxlate.models.layers import check_input, check_int, check_size, check_spatial_dims, conv_bias, monai_norm_name
from medxlate.models.registry import DISCRIMINATORS

__all__ = ["PatchGANDiscriminator"]

_NAME = "discriminator 'patchgan'"
_MAX_LAYERS = 3  # beyond this MONAI's widths (ndf * 2**n) diverge from pix2pix's (capped at ndf * 8)


@DISCRIMINATORS.register("patchgan")
class PatchGANDiscriminator(nn.Module):
    """pix2pix PatchGAN discriminator: one real/fake logit per overlapping input patch.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3; 1 also works).
        in_channels: source channels + target channels (the conditional input is their concatenation).
        ndf: channels of the first layer.
        n_layers: number of stride-2 convolutions; 3 gives the 70x70 PatchGAN of pix2pix, 1 and 2
            give receptive fields of 16 and 34.
        norm: ``"batch"`` (pix2pix default), ``"instance"`` or ``"none"``.

    Raises:
        ConfigError: for an invalid hyper-parameter, naming it and the value received.

    Example:
        >>> d = PatchGANDiscriminator(spatial_dims=2, in_channels=2, ndf=8)
        >>> d(torch.zeros(2, 2, 32, 32)).shape
        torch.Size([2, 1, 2, 2])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims, _NAME)
        self.in_channels = check_int(in_channels, "in_channels", _NAME)
        check_size(ndf, "ndf", _NAME)
        self.n_layers = check_int(n_layers, "n_layers", _NAME)
        if n_layers > _MAX_LAYERS:
            raise ConfigError(
                f"{_NAME}: parameter 'n_layers' got {n_layers}; expected 1, 2 or 3 (receptive fields 16, 34, "
                "70): beyond 3, MONAI's PatchDiscriminator keeps doubling the width where pix2pix caps it at "
                "ndf * 8, so it would no longer be the pix2pix PatchGAN"
            )
        self.net = PatchDiscriminator(
            spatial_dims=spatial_dims,
            channels=ndf,
            in_channels=in_channels,
            out_channels=1,
            num_layers_d=n_layers,
            kernel_size=4,
            activation=(Act.LEAKYRELU, {"negative_slope": 0.2}),
            norm=monai_norm_name(norm, _NAME),  # type: ignore[arg-type]  # None = no norm layer
            bias=conv_bias(norm),
            padding=1,
            dropout=0.0,
            last_conv_kernel_size=4,
        )

    @property
    def receptive_field(self) -> int:
        """Receptive field of one output logit, in input pixels/voxels per axis (70 for n_layers=3)."""
        rf = 4 + 3  # final 4/1 conv, then the 4/1 conv before it
        for _ in range(self.n_layers):  # the stride-2 4x4 convs, walked from the output back
            rf = (rf - 1) * 2 + 4
        return rf

    @property
    def min_input_size(self) -> int:
        """Smallest spatial size that still yields at least one logit (``3 * 2**n_layers``)."""
        return 3 * 2**self.n_layers

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits plus the intermediate activations (for a feature-matching loss).

        Args:
            x: ``cat([source, target], dim=1)``, shape ``(B, in_channels, *spatial)``, every spatial
                size at least ``min_input_size``.

        Returns:
            ``(logits, features)``: logits ``(B, 1, *patch_grid)``; features is the list of the
            ``n_layers + 1`` block outputs after each LeakyReLU, outermost first.

        Raises:
            GeometryError: if the input rank, channels or spatial size do not fit.
        """
        check_input(x, self.spatial_dims, self.in_channels, _NAME, minimum=self.min_input_size)
        outputs = self.net(x)  # MONAI: [block outputs..., logits]
        return outputs[-1], outputs[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits (no sigmoid: the adversarial losses take logits).

        Args:
            x: ``cat([source, target], dim=1)``, shape ``(B, in_channels, *spatial)``.

        Returns:
            Logits of shape ``(B, 1, *patch_grid)``; for 2D inputs of side ``s`` with
            ``n_layers=3`` the grid side is ``s // 8 - 2`` (30 for 256).

        Raises:
            GeometryError: if the input rank, channels or spatial size do not fit.
        """
        return self.forward_with_features(x)[0]
