"""Registered, weighted loss terms that the one GAN step sums (besides the adversarial term).

A term maps a :class:`LossInputs` (generator output, real target, source, optional projection
context) to a scalar. The config names terms and weights (``loss.lambda_l1`` is the weight of
``l1``; ``loss.terms`` adds others)::

    loss:
      lambda_l1: 100
      terms: {projection: 10}

Terms:

* ``l1``: mean absolute error against the target (model units), pix2pix's term.
* ``mse``: mean squared error against the target (model units), X2CT-GAN's voxel term.
* ``projection``: projection consistency (X-ray -> CT): DRRs of the predicted CT, rendered with
  the input views' geometry, against the clean views of the real CT, mean absolute difference in
  view units ``[-1, 1]``. Needs a :class:`ProjectionContext` (tasks with a ``projection`` geometry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from medxlate.errors import ConfigError
from medxlate.models.losses import l1_loss
from medxlate.models.registry import Registry

__all__ = [
    "LOSS_TERMS",
    "LossInputs",
    "LossTerm",
    "ProjectionContext",
    "WeightedTerm",
    "weighted_terms",
]


@dataclass(frozen=True)
class ProjectionContext:
    """What the ``projection`` term needs to render DRRs of a predicted CT.

    Attributes:
        affine: ``(4, 4)`` voxel -> world affine of the model grid (the isocentre is its centre).
        geometries: One :class:`medxlate.xray.Geometry` per view, in input-channel order.
        ct_window: The CT window in HU that model units ``[-1, 1]`` map to.
    """

    affine: torch.Tensor
    geometries: Sequence[Any]
    ct_window: tuple[float, float]


@dataclass(frozen=True)
class LossInputs:
    """Tensors a loss term may use (float32, attached to the generator's graph through ``fake``).

    Attributes:
        fake: Generator output ``(B, 1, *spatial)`` in model units.
        target: Real target, same shape.
        source: The generator's input.
        reference_views: Clean views of the real target ``(B, V, H, W)`` (X-ray -> CT), else ``None``.
        projection: The projection context (X-ray -> CT), else ``None``.
    """

    fake: torch.Tensor
    target: torch.Tensor
    source: torch.Tensor
    reference_views: torch.Tensor | None = None
    projection: ProjectionContext | None = None


class LossTerm(Protocol):
    """A loss term: ``term(inputs) -> scalar tensor``."""

    def __call__(self, inputs: LossInputs) -> torch.Tensor: ...


LOSS_TERMS: Registry[LossTerm] = Registry("loss term")


@LOSS_TERMS.register("l1")
class L1Term:
    """Mean absolute error of the generator output against the target."""

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return l1_loss(inputs.fake, inputs.target)


@LOSS_TERMS.register("mse")
class MSETerm:
    """Mean squared error of the generator output against the target."""

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        return F.mse_loss(inputs.fake, inputs.target)


@LOSS_TERMS.register("projection")
class ProjectionTerm:
    """DRRs of the predicted CT against the clean views of the real CT (view units, mean |difference|)."""

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        from medxlate.transforms.intensity import unit_to_range
        from medxlate.xray.consistency import projection_consistency_loss

        context = inputs.projection
        if context is None or inputs.reference_views is None:
            raise ConfigError(
                "loss term 'projection' needs views and their geometry: it applies to X-ray -> CT "
                "(data.task: xray2ct) only"
            )
        predicted_hu = unit_to_range(inputs.fake, context.ct_window)
        return projection_consistency_loss(predicted_hu, inputs.reference_views, context.affine, context.geometries)


WeightedTerm = tuple[str, float, LossTerm]


def weighted_terms(weights: Mapping[str, float]) -> list[WeightedTerm]:
    """Build the registered terms named in ``weights`` (in that order), keeping their weights.

    Raises:
        RegistryError: for an unknown term name.
        ConfigError: for a negative or non-finite weight.
    """
    built: list[WeightedTerm] = []
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ConfigError(f"loss term '{name}': weight {weight!r}; expected a finite number >= 0")
        built.append((name, float(weight), LOSS_TERMS.build(name)))
    return built
