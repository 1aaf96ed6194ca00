"""Slice-by-slice translation of a whole volume with MONAI's SliceInferer (2D and 2.5D)."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from monai.inferers import SliceInferer

from medxlate.transforms import pad_in_plane, stack_context


def autocast_context(device: torch.device, bf16: bool) -> torch.autocast | nullcontext:
    """bf16 autocast on CUDA when asked; a no-op elsewhere."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def translate_slices(
    generator: torch.nn.Module,
    source: torch.Tensor,
    context_slices: int,
    divisible: int,
    device: torch.device,
    sw_batch_size: int = 8,
    bf16: bool = True,
) -> torch.Tensor:
    """Run a 2D generator over every axial slice of a normalised volume.

    Args:
        generator: 2D network mapping (B, C*(2k+1), X', Y') to (B, 1, X', Y'); put in eval mode by the caller.
        source: (C, X, Y, Z) source in model units on the canonical grid.
        context_slices: Neighbours on each side stacked as channels (2.5D).
        divisible: In-plane size multiple the generator needs.
        device: Where the network runs.
        sw_batch_size: Slices per forward pass.
        bf16: Use bf16 autocast on CUDA.

    Returns:
        (1, X, Y, Z) float32 output on the CPU, same grid as ``source``.
    """
    stacked = stack_context(source, context_slices)  # (C*(2k+1), X, Y, Z)
    padded, (crop_x, crop_y) = pad_in_plane(stacked, divisible, -1.0)
    roi = (padded.shape[1], padded.shape[2])
    inferer = SliceInferer(spatial_dim=2, roi_size=roi, sw_batch_size=sw_batch_size, cval=-1.0, progress=False)
    with torch.inference_mode(), autocast_context(device, bf16):
        output = inferer(padded[None].to(device), generator)  # (1, 1, X', Y', Z)
    return output[0, :, crop_x, crop_y, :].float().cpu()
