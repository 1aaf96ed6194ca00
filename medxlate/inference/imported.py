"""medxlate checkpoints from generators trained elsewhere (pix2pix/CycleGAN reference implementation).

The generator is loaded by :func:`medxlate.models.pix2pix.import_pix2pix_generator`; this module adds
what a medxlate checkpoint records next to the weights and the reference's state dict does not
hold: the task, the CT window and MR percentiles that map intensities to the model's [-1, 1] (the
reference reads 8-bit images normalised to [-1, 1], so the window that produced those images is
the one to state), the slice-wise strategy and the modalities. The result is the same inference
checkpoint training writes, so ``medxlate translate`` and ``Translator.from_checkpoint`` load it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from medxlate import __version__
from medxlate.checkpoint import INFERENCE_KIND, save_checkpoint
from medxlate.errors import ConfigError
from medxlate.inference.strategy import SliceStrategy, strategy_to_dict
from medxlate.tasks.task import get_task
from medxlate.transforms import Preprocessing

__all__ = ["IMPORT_TASKS", "import_pix2pix"]

IMPORT_TASKS = ("ct2mr", "mr2ct")
REFERENCE = "junyanz/pytorch-CycleGAN-and-pix2pix"


def _increasing(pair: tuple[float, float], option: str) -> tuple[float, float]:
    low, high = (float(v) for v in pair)
    if not low < high:
        raise ConfigError(f"{option}: expected an increasing pair LOW HIGH, got {low:g} {high:g}")
    return low, high


def _target_range(task: str, window: tuple[float, float], mr_range: tuple[float, float] | None) -> tuple[float, float]:
    """The target units the model's [-1, 1] output maps to: the CT window, or the stated MR range."""
    if task == "mr2ct":
        return window
    if mr_range is None:
        raise ConfigError(
            "mr_range (--mr-range LOW HIGH): a ct2mr model's output [-1, 1] needs the MR intensities it maps "
            "to (the range the training MR images were scaled from); none given"
        )
    return _increasing(mr_range, "mr_range (--mr-range)")


def _context_slices(input_nc: int, output_nc: int) -> int:
    """Neighbouring slices per side fed as channels (``input_nc = 2k + 1``); one output channel."""
    if output_nc != 1:
        raise ConfigError(f"output_nc (--output-nc) got {output_nc}; medxlate translates to one channel: expected 1")
    if input_nc < 1 or input_nc % 2 == 0:
        raise ConfigError(
            f"input_nc (--input-nc) got {input_nc}; medxlate feeds a slice and k neighbours on each side as "
            "channels: expected an odd number 2k + 1 (1 for plain 2D)"
        )
    return (input_nc - 1) // 2


def import_pix2pix(
    weights: str | Path,
    output: str | Path,
    *,
    netG: str,  # noqa: N803 -- the reference's option name
    norm: str,
    task: str,
    window: tuple[float, float],
    input_nc: int = 1,
    output_nc: int = 1,
    ngf: int = 64,
    mr_percentiles: tuple[float, float] = (0.5, 99.5),
    mr_range: tuple[float, float] | None = None,
    pixdim: tuple[float, float, float] | None = None,
) -> Path:
    """Write a medxlate inference checkpoint holding a reference pix2pix/CycleGAN generator.

    Args:
        weights: The reference's ``.pth`` state dict (e.g. ``latest_net_G.pth``); read with
            ``weights_only=True``.
        output: The checkpoint to write (``.pt``).
        netG: ``unet_128``, ``unet_256``, ``resnet_6blocks`` or ``resnet_9blocks``.
        norm: ``batch`` or ``instance``.
        task: ``ct2mr`` or ``mr2ct`` (the model's direction).
        window: The CT window (HU) that was scaled to the model's [-1, 1] (CT input for ``ct2mr``,
            CT output for ``mr2ct``).
        input_nc: Input channels: ``2k + 1`` is one axial slice and ``k`` neighbours on each side.
        output_nc: Output channels (must be 1).
        ngf: The reference's ``--ngf``.
        mr_percentiles: Per-volume MR percentiles scaled to [-1, 1] (the MR input of ``mr2ct``).
        mr_range: ``ct2mr`` only (required there): MR intensities the output [-1, 1] maps back to.
        pixdim: Spacing (mm) to translate on, or ``None`` for each input's own.

    Returns:
        The path written.

    Raises:
        ConfigError: for an unknown netG, norm or task, or inconsistent channels or intensities.
        CheckpointError: if the weights are unsafe, unreadable or not the stated architecture.
    """
    from medxlate.io.provenance import sha256_file
    from medxlate.models.pix2pix import import_pix2pix_generator

    if task not in IMPORT_TASKS:
        raise ConfigError(f"task {task!r}: expected one of {', '.join(IMPORT_TASKS)}")
    context = _context_slices(input_nc, output_nc)
    window = _increasing(window, "window (--window)")
    prep = Preprocessing(
        source_window=window,
        target_percentiles=_increasing(mr_percentiles, "mr_percentiles (--mr-percentiles)"),
        target_range=_target_range(task, window, mr_range),
        pixdim=None if pixdim is None else tuple(float(v) for v in pixdim),  # type: ignore[arg-type]
        context_slices=context,
        task=get_task(task),
    )
    imported = import_pix2pix_generator(weights, netG, norm, input_nc, output_nc, ngf)
    prep = replace(prep, divisible=imported.module.required_multiple)
    payload = {
        "generator": imported.module.state_dict(),
        "generator_spec": imported.spec,
        "preprocessing": prep.to_dict(),
        "inference": strategy_to_dict(SliceStrategy(context_slices=context)),
        "source_modality": prep.task.source_modality,
        "target_modality": prep.task.target_modality,
        "medxlate_version": __version__,
        "imported_from": {
            "implementation": REFERENCE,
            "file": Path(weights).name,
            "sha256": sha256_file(Path(weights)),
            "netG": netG,
            "norm": norm,
            "ngf": ngf,
        },
        "kind": INFERENCE_KIND,
    }
    return save_checkpoint(payload, output)
