"""The finiteness rule of translation: non-finite voxels are refused on the way in and never let out.

Inputs: a volume with any NaN/inf voxel is refused (:class:`InputDataError` naming it and the
count), not repaired. A convolutional generator spreads every voxel over its receptive field (a
10 x 10 NaN patch turns most of a slice into NaN), so a repaired value would shape the synthetic
image far beyond the patch, and any value chosen for it (air, the window minimum, a neighbour's
mean) is invented anatomy in an image meant to be read as a patient's. The user repairs knowingly
(e.g. ``torch.nan_to_num``) and owns that choice; ``medxlate prepare`` refuses the same inputs.

Weights and outputs: a generator holding NaN/inf parameters is refused when its checkpoint is
loaded (:class:`CheckpointError`), and a translation whose output holds any non-finite voxel raises
:class:`NonFiniteError`, so no synthetic volume with NaN/inf is ever returned, written or scored.
"""

from __future__ import annotations

import torch

from medxlate.errors import CheckpointError, InputDataError, NonFiniteError


def _count(values: torch.Tensor) -> tuple[int, int]:
    """Number of NaN and of +-inf values."""
    return int(torch.isnan(values).sum()), int(torch.isinf(values).sum())


def check_finite_input(volume: torch.Tensor, label: str) -> None:
    """Refuse a volume holding any NaN/inf voxel.

    Args:
        volume: The input in physical units.
        label: What to call it in the message (a file path or ``"input volume"``).

    Raises:
        InputDataError: naming ``label`` and the counts.
    """
    if volume.is_floating_point() and not bool(torch.isfinite(volume).all()):
        nan, inf = _count(volume)
        raise InputDataError(
            f"{label}: {nan + inf} of {volume.numel()} voxels are not finite ({nan} NaN, {inf} inf); "
            "expected finite intensities. medxlate does not translate non-finite inputs (the network "
            "would spread them); repair them first if you know what they should be"
        )


def check_finite_weights(module: torch.nn.Module, label: str) -> None:
    """Refuse a network whose parameters or buffers hold NaN/inf.

    Raises:
        CheckpointError: naming ``label``, the first bad tensor and the total count.
    """
    bad: dict[str, int] = {}
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad[name] = sum(_count(tensor))
    if bad:
        first = next(iter(bad))
        raise CheckpointError(
            f"{label}: the generator holds {sum(bad.values())} non-finite weights in {len(bad)} tensors "
            f"(first: '{first}'); training diverged or the file is damaged; expected finite weights"
        )


def check_finite_output(output: torch.Tensor, label: str) -> None:
    """Refuse a synthetic volume holding any NaN/inf voxel.

    Raises:
        NonFiniteError: naming ``label`` and the counts; nothing is returned or written.
    """
    if not bool(torch.isfinite(output).all()):
        nan, inf = _count(output)
        raise NonFiniteError(
            f"{label}: the generator produced {nan + inf} non-finite voxels ({nan} NaN, {inf} inf) of "
            f"{output.numel()} from a finite input (numerical overflow or damaged weights); no synthetic "
            "volume is returned or written"
        )
