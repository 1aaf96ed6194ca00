"""What a translation *is*: the roles, their modalities and normalisers, and the geometry between them.

A :class:`Task` is a small JSON-able record stored in the checkpoint's preprocessing record and
rebuilt at inference. CT -> MR and MR -> CT are two records (:data:`TASKS`), not two code paths:
the preprocessing asks the task which normaliser each role uses.

Normalisers (:data:`NORMALISERS`, each invertible):

* ``ct_window``: clip to a HU window and scale it to [-1, 1]; the inverse unscales the window
  (outputs in HU, inside the window).
* ``mr_percentile``: scale each volume's percentile values to [-1, 1] (no clipping); the inverse
  uses the training reference range (the mean of the training volumes' percentile values).
* ``xray_log``: radiograph views. Its input is the line integrals ``-log(I / I0)`` of a view (a
  DRR's, or a real radiograph's after :func:`medxlate.xray.to_detector_domain`); each image's
  percentile window (:func:`medxlate.xray.radiograph`) is mapped to [-1, 1]. Its inverse maps back
  to that window's [0, 1] display domain (the physical line integrals are not recoverable).

Outside the body: a task whose source has a body rule (:data:`BODY_THRESHOLD`, CT: -500 HU, the rule
``prepare`` computes training masks with) records it as ``source_body_threshold``; translations set
every voxel outside the input's body mask (:func:`medxlate.data.bodymask.body_mask_from_ct`) to the
target's background, the model's air (-1) mapped to target units. Air in the input stays air in the
output instead of showing what the generator makes of it (noise, transposed-convolution patterns).

Geometry rules between the roles:

* ``same_grid``: source, target and mask on one voxel grid (CT <-> MR); the discriminator judges
  ``cat([source, target])``.
* ``projection``: the source is one 2D view per configured :class:`medxlate.xray.Geometry`, the
  target a volume on the model grid those views were rendered from (X-ray -> CT); the
  discriminator judges the target alone (the grids do not match, so there is nothing to concatenate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from medxlate.errors import CheckpointError, RegistryError
from medxlate.models.registry import Registry

Forward = Callable[[torch.Tensor, tuple[float, float]], tuple[torch.Tensor, tuple[float, float]]]


@dataclass(frozen=True)
class Normaliser:
    """An invertible map from a modality's units to the model's [-1, 1].

    Attributes:
        name: Registry name (``ct_window``, ``mr_percentile``).
        forward: ``(volume, parameter) -> (unit volume, the volume's own (low, high) in its units)``;
            the parameter is the HU window (``ct_window``) or the percentiles (``mr_percentile``).
        per_volume: Whether the scaling depends on the volume (then the inverse needs a reference
            range recorded from the training volumes) or is fixed by the parameter.
    """

    name: str
    forward: Forward
    per_volume: bool

    def inverse(self, unit: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        """Map [-1, 1] back to units with ``value_range`` (the window, or the reference range)."""
        from medxlate.transforms.intensity import unit_to_range  # here: transforms' preset imports tasks

        return unit_to_range(unit, value_range)


def _ct_window(volume: torch.Tensor, window: tuple[float, float]) -> tuple[torch.Tensor, tuple[float, float]]:
    from medxlate.transforms.intensity import window_to_unit

    return window_to_unit(volume, window), (float(window[0]), float(window[1]))


def _mr_percentile(volume: torch.Tensor, percentiles: tuple[float, float]) -> tuple[torch.Tensor, tuple[float, float]]:
    from medxlate.transforms.intensity import percentile_range, range_to_unit

    value_range = percentile_range(volume, percentiles)
    return range_to_unit(volume, value_range), value_range


def _xray_log(
    line_integral: torch.Tensor, percentiles: tuple[float, float]
) -> tuple[torch.Tensor, tuple[float, float]]:
    from medxlate.xray.attenuation import radiograph

    image, _ = radiograph(line_integral, percentiles[0], percentiles[1])
    return image * 2.0 - 1.0, (0.0, 1.0)


NORMALISERS: Registry[Normaliser] = Registry("normaliser")
NORMALISERS.register("ct_window")(lambda: Normaliser("ct_window", _ct_window, per_volume=False))
NORMALISERS.register("mr_percentile")(lambda: Normaliser("mr_percentile", _mr_percentile, per_volume=True))
NORMALISERS.register("xray_log")(lambda: Normaliser("xray_log", _xray_log, per_volume=True))

GEOMETRY_RULES = ("same_grid", "projection")

MODALITY_NORMALISER = {"CT": "ct_window", "MR": "mr_percentile"}
BODY_THRESHOLD = {"CT": -500.0}  # source modality -> body mask threshold in its units (none for MR: arbitrary units)


@dataclass(frozen=True)
class Task:
    """A translation task (JSON-able via :meth:`to_dict`).

    Attributes:
        name: Registry name (``ct2mr``, ``mr2ct``, ``xray2ct``).
        source_modality: Modality of the model's input (``CT``, ``MR``, ``XR`` for radiograph views).
        target_modality: Modality of the model's output.
        source_normaliser: Normaliser name of the source role.
        target_normaliser: Normaliser name of the target role.
        geometry: Rule between the roles: ``same_grid`` (source, target and mask on one voxel grid)
            or ``projection`` (2D views of the target volume, see the module docstring).
        mask: Whether an optional body mask role (on the target's grid) is used when present.
        source_body_threshold: Source voxels above it (source units) are body candidates of the
            input's body mask; outside that mask translations are set to the target's background.
            ``None``: no body rule for this source, translations are kept everywhere.
    """

    name: str
    source_modality: str
    target_modality: str
    source_normaliser: str
    target_normaliser: str
    geometry: Literal["same_grid", "projection"] = "same_grid"
    mask: bool = True
    source_body_threshold: float | None = None

    @property
    def conditional_discriminator(self) -> bool:
        """Whether the discriminator sees ``cat([source, target])`` (same grid) or the target alone."""
        return self.geometry == "same_grid"

    def normaliser(self, role: Literal["source", "target"]) -> Normaliser:
        """The registered normaliser of ``role``."""
        return NORMALISERS.build(self.source_normaliser if role == "source" else self.target_normaliser)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able representation."""
        return {
            "name": self.name,
            "source_modality": self.source_modality,
            "target_modality": self.target_modality,
            "source_normaliser": self.source_normaliser,
            "target_normaliser": self.target_normaliser,
            "geometry": self.geometry,
            "mask": self.mask,
            "source_body_threshold": self.source_body_threshold,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        """Rebuild from :meth:`to_dict` output (e.g. a checkpoint's record).

        Records written before ``source_body_threshold`` existed take the registered task's (they
        were trained for that task; the rule only concerns what translations write outside the body).

        Raises:
            CheckpointError: if fields are missing or unknown, or a normaliser/geometry/threshold is not known.
        """
        if "source_body_threshold" not in data and isinstance(data.get("name"), str) and data["name"] in TASKS:
            data = {**data, "source_body_threshold": get_task(data["name"]).source_body_threshold}
        try:
            task = cls(**data)
        except TypeError as e:
            raise CheckpointError(f"checkpoint task record is not understood: {e}") from e
        threshold = task.source_body_threshold
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold)
        ):
            raise CheckpointError(
                f"checkpoint task record '{task.name}': source_body_threshold {threshold!r}; "
                "expected a finite number or null"
            )
        try:
            task.normaliser("source"), task.normaliser("target")
        except RegistryError as e:
            raise CheckpointError(f"checkpoint task record '{task.name}': {e}") from e
        if task.geometry not in GEOMETRY_RULES:
            raise CheckpointError(f"checkpoint task record '{task.name}': unknown geometry {task.geometry!r}")
        return task


def _pair(source: str, target: str) -> Callable[[], Task]:
    name = f"{source.lower()}2{target.lower()}"
    normalisers = MODALITY_NORMALISER[source], MODALITY_NORMALISER[target]
    return lambda: Task(name, source, target, *normalisers, source_body_threshold=BODY_THRESHOLD.get(source))


TASKS: Registry[Task] = Registry("task")
TASKS.register("ct2mr")(_pair("CT", "MR"))
TASKS.register("mr2ct")(_pair("MR", "CT"))
TASKS.register("xray2ct")(
    lambda: Task("xray2ct", "XR", "CT", "xray_log", "ct_window", geometry="projection", mask=True)
)

DEFAULT_TASK = "ct2mr"  # what checkpoints written before tasks existed were trained for


def get_task(name: str) -> Task:
    """The registered task ``name``.

    Raises:
        RegistryError: for an unknown name (with a did-you-mean suggestion).
    """
    return TASKS.build(name)
