"""Run a generator over a whole normalised volume with its inference strategy.

One function, :func:`infer_volume`, serves training validation and the Translator. It prepares the
input for the strategy (2.5D context, in-plane padding for slices), runs the MONAI inferer from
:func:`~medxlate.inference.strategy.build_inferer` under bf16 autocast on CUDA, and on a CUDA
out-of-memory error halves the number of windows per batch and retries (logged), down to one.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import replace

import torch

from medxlate.errors import ConfigError, DeviceMemoryError
from medxlate.inference.strategy import InferenceStrategy, SliceStrategy, build_inferer
from medxlate.transforms import pad_in_plane, stack_context

logger = logging.getLogger(__name__)


def autocast_context(device: torch.device, bf16: bool) -> torch.autocast | nullcontext:
    """bf16 autocast on CUDA when asked; a no-op elsewhere."""
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def infer_volume(
    generator: torch.nn.Module,
    source: torch.Tensor,
    strategy: InferenceStrategy,
    divisible: int,
    device: torch.device,
    bf16: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Translate a whole normalised volume.

    Args:
        generator: 2D network for ``slices`` ((B, C*(2k+1), X', Y') -> (B, 1, X', Y')), 3D network for
            ``sliding_window`` ((B, C, *roi) -> (B, 1, *roi)); put in eval mode by the caller.
        source: (C, X, Y, Z) source in model units on the canonical grid.
        strategy: How to cover the volume (slices or sliding windows).
        divisible: Size multiple the generator needs (in-plane for slices; every window side for
            sliding windows).
        device: Where the network runs.
        bf16: Use bf16 autocast on CUDA.
        progress: Show MONAI's progress bar over slice/window batches (on stderr, on a terminal only).

    Returns:
        (1, X, Y, Z) float32 output on the CPU, same grid as ``source``.

    Raises:
        ConfigError: if a sliding window is not a multiple of ``divisible``.
        DeviceMemoryError: if even one window per batch does not fit in device memory.
    """
    if isinstance(strategy, SliceStrategy):
        stacked = stack_context(source, strategy.context_slices)  # (C*(2k+1), X, Y, Z)
        padded, (crop_x, crop_y) = pad_in_plane(stacked, divisible, -1.0)
        output = _run_with_oom_retry(generator, padded[None], strategy, device, bf16, progress)  # (1, 1, X', Y', Z)
        return output[0, :, crop_x, crop_y, :].float().cpu()
    bad = [size for size in strategy.roi_size if size % divisible]
    if bad:
        raise ConfigError(
            f"inference roi_size {list(strategy.roi_size)}: every side must be a multiple of {divisible} "
            "(the generator's total stride)"
        )
    output = _run_with_oom_retry(generator, source[None], strategy, device, bf16, progress)  # (1, 1, X, Y, Z)
    return output[0].float().cpu()


def _run_with_oom_retry(
    generator: torch.nn.Module,
    inputs: torch.Tensor,
    strategy: InferenceStrategy,
    device: torch.device,
    bf16: bool,
    progress: bool = False,
) -> torch.Tensor:
    """Run the strategy's inferer; on out-of-memory, halve ``sw_batch_size`` and start again."""
    batch = strategy.sw_batch_size
    inputs = inputs.to(device)
    while True:
        inferer = build_inferer(replace(strategy, sw_batch_size=batch), progress=progress)
        try:
            with torch.inference_mode(), autocast_context(device, bf16):
                return inferer(inputs, generator)
        except torch.OutOfMemoryError as e:
            if batch == 1:
                raise DeviceMemoryError(
                    f"translation ran out of memory on {device} with one window per batch "
                    f"({_window_text(strategy)}): use a smaller window (eval.roi_size) or another device"
                ) from e
        # out of the except block, so the traceback's references to the failed batch are freed
        if device.type == "cuda":
            torch.cuda.empty_cache()
        logger.warning(
            "out of memory on %s with %d windows per batch; retrying with %d", device, batch, max(1, batch // 2)
        )
        batch = max(1, batch // 2)


def _window_text(strategy: InferenceStrategy) -> str:
    if isinstance(strategy, SliceStrategy):
        return "whole axial slices"
    return f"roi_size {list(strategy.roi_size)}"
