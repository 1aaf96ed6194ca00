"""The preprocessing recipe a model was trained with, stored in its checkpoint and rebuilt for inference.

:class:`Preprocessing` is plain data (JSON-able, ``weights_only``-loadable); its methods turn volumes
in physical units into the model's input space and back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor

from medxlate.errors import CheckpointError
from medxlate.tasks.task import DEFAULT_TASK, Normaliser, Task, get_task
from medxlate.transforms.domain import TrainingDomain
from medxlate.transforms.spatial import to_canonical

XRAY_WINDOW_PERCENTILES = (0.5, 99.5)  # radiograph display window of views (medxlate.xray.radiograph's default)
PREPROCESSING_VERSION = 2  # 2: adds the training domain (spacing, intensities, field of view)


@dataclass(frozen=True)
class Preprocessing:
    """How volumes are brought to the model and back.

    Which role is CT and which MR is the ``task``'s (:mod:`medxlate.tasks`); each role is normalised
    by its normaliser. The two intensity parameters keep their CT -> MR names (checkpoints and
    configs written before tasks existed read unchanged): ``source_window`` is *the CT window*
    and ``target_percentiles`` *the MR percentiles*, whichever role CT and MR play.

    Attributes:
        source_window: The CT window in HU mapped to [-1, 1] with clipping (``ct_window``).
        target_percentiles: Per-volume MR percentiles mapped to [-1, 1] (``mr_percentile``).
        target_range: Reference target intensities ``(low, high)`` (mean of the training volumes'
            own ranges: their percentile values for an MR target, the CT window for a CT target);
            model outputs of a per-volume normalised target are mapped back with it.
        pixdim: Spacing (mm) volumes are resampled to, or ``None``.
        context_slices: Neighbouring slices on each side given as channels (2.5D).
        divisible: In-plane sizes are padded to a multiple of this (the generator's total stride).
        domain: What the training volumes were like (spacing, source intensities, field of view);
            ``None`` in records written before version 2.
        version: Record format version.
        task: The translation task (``ct2mr`` in records written before tasks existed).
    """

    source_window: tuple[float, float]
    target_percentiles: tuple[float, float]
    target_range: tuple[float, float] | None = None
    pixdim: tuple[float, float, float] | None = None
    context_slices: int = 0
    divisible: int = 1
    domain: TrainingDomain | None = None
    version: int = field(default=PREPROCESSING_VERSION)
    task: Task = field(default_factory=lambda: get_task(DEFAULT_TASK))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able representation (lists instead of tuples)."""
        data = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if k not in ("domain", "task")
        }
        data["task"] = self.task.to_dict()
        data["domain"] = self.domain.to_dict() if self.domain is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Rebuild from :meth:`to_dict` output (e.g. read from a checkpoint).

        Records of version 1 (no training domain) load with ``domain=None``; records without a
        task (written before tasks existed) load as ``ct2mr``.

        Raises:
            CheckpointError: if keys are missing or unknown, or the version is newer than this code.
        """
        version = data.get("version", 1)
        if not isinstance(version, int) or version > PREPROCESSING_VERSION:
            raise CheckpointError(
                f"checkpoint preprocessing record has version {version!r}; this medxlate reads up to "
                f"{PREPROCESSING_VERSION} (upgrade medxlate)"
            )
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k not in ("domain", "task")}
        if data.get("task") is not None:
            values["task"] = Task.from_dict(data["task"])
        if data.get("domain") is not None:
            values["domain"] = TrainingDomain.from_dict(data["domain"])
        try:
            return cls(**values)
        except TypeError as e:
            raise CheckpointError(f"checkpoint preprocessing record is not understood: {e}") from e

    def inference_spacing(self, source: MetaTensor, through_plane: bool) -> tuple[float, float, float] | None:
        """Spacing (RAS, mm) to translate ``source`` on, or ``None`` to keep its own.

        The configured ``pixdim`` when there is one; else the training domain's rule (see
        :mod:`medxlate.transforms.domain`: axes outside the training spacing range go to the
        training median); ``None`` for records without a domain.

        Args:
            source: The input volume with its affine.
            through_plane: Whether the model sees the slice distance (2.5D, 3D) or only single
                axial slices (2D), whose through-plane spacing is then kept.
        """
        if self.pixdim is not None:
            return self.pixdim
        if self.domain is None:
            return None
        return self.domain.inference_spacing(source.affine, through_plane=through_plane)

    def _parameter(self, normaliser: Normaliser) -> tuple[float, float]:
        """The normaliser's parameter: the CT window, the MR percentiles, or the radiograph window's
        percentiles (``xray_log``: those of :func:`medxlate.xray.radiograph`, fixed)."""
        if normaliser.name == "xray_log":
            return XRAY_WINDOW_PERCENTILES
        return self.source_window if normaliser.name == "ct_window" else self.target_percentiles

    def source_to_model(self, source: MetaTensor, pixdim: tuple[float, float, float] | None = None) -> MetaTensor:
        """Canonical grid (RAS; resampled to ``pixdim``, else to the configured ``pixdim`` if any) and
        the source normaliser (CT: the HU window scaled to [-1, 1]; MR: its own percentiles)."""
        canonical = to_canonical(source, pixdim or self.pixdim)
        normaliser = self.task.normaliser("source")
        return normaliser.forward(canonical, self._parameter(normaliser))[0]

    def target_to_model(self, target: MetaTensor) -> tuple[MetaTensor, tuple[float, float]]:
        """Canonical grid and the target normaliser; returns the volume and its own (low, high)
        (MR: its percentile values; CT: the window)."""
        canonical = to_canonical(target, self.pixdim)
        normaliser = self.task.normaliser("target")
        return normaliser.forward(canonical, self._parameter(normaliser))

    def model_to_target(self, output: torch.Tensor) -> torch.Tensor:
        """Map model output in [-1, 1] to target units: the reference range for a per-volume
        normalised target (MR), the window for a CT target (HU inside the window).

        Raises:
            CheckpointError: if a per-volume target has no recorded reference range.
        """
        normaliser = self.task.normaliser("target")
        if not normaliser.per_volume:
            return normaliser.inverse(output, self._parameter(normaliser))
        if self.target_range is None:
            raise CheckpointError("preprocessing has no target_range: cannot map outputs back to target units")
        return normaliser.inverse(output, self.target_range)

    @property
    def source_unit_range(self) -> tuple[float, float]:
        """Range that [-1, 1] of the model's source input maps back to for statistics and display:
        the CT window (HU) for a CT source; ``(-1, 1)`` (model units) for a per-volume normalised
        source, which has no common physical scale."""
        normaliser = self.task.normaliser("source")
        return (-1.0, 1.0) if normaliser.per_volume else self._parameter(normaliser)

    @property
    def target_data_range(self) -> float | None:
        """Fixed ``data_range`` for PSNR/SSIM in target units: the CT window width for a CT target;
        ``None`` (each reference's own max - min) for a per-volume normalised target."""
        normaliser = self.task.normaliser("target")
        if normaliser.per_volume:
            return None
        low, high = self._parameter(normaliser)
        return float(high - low)


def stack_context(volume: torch.Tensor, context_slices: int) -> torch.Tensor:
    """Stack neighbouring axial slices as channels for 2.5D models.

    Args:
        volume: (C, X, Y, Z) tensor.
        context_slices: Neighbours on each side; edges repeat the first/last slice.

    Returns:
        (C * (2k + 1), X, Y, Z) tensor, channel blocks ordered from z-k to z+k.
    """
    if context_slices == 0:
        return volume
    k = context_slices
    depth = volume.shape[-1]
    index = torch.arange(depth, device=volume.device)
    blocks = [volume[..., (index + offset).clamp(0, depth - 1)] for offset in range(-k, k + 1)]
    return torch.cat(blocks, dim=0)


def pad_in_plane(volume: torch.Tensor, multiple: int, value: float) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """Pad the two in-plane axes (dims -3, -2 of ``(..., X, Y, Z)``) symmetrically to a multiple.

    Returns:
        The padded tensor and the ``(slice_x, slice_y)`` that crops it back.
    """
    size_x, size_y = volume.shape[-3], volume.shape[-2]
    pad_x, pad_y = (-size_x) % multiple, (-size_y) % multiple
    before_x, before_y = pad_x // 2, pad_y // 2
    # F.pad order: last dim first -> (Z, Y, X)
    padded = F.pad(volume, (0, 0, before_y, pad_y - before_y, before_x, pad_x - before_x), value=value)
    crop = (slice(before_x, before_x + size_x), slice(before_y, before_y + size_y))
    return padded, crop
