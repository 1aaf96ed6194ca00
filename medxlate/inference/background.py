"""Outside the input's body, a translation is the target's background (the task's body rule).

A task whose source has a body rule (:attr:`medxlate.tasks.Task.source_body_threshold`, CT: -500 HU)
gets every voxel outside the input's body mask set to the target's background: the model's air
(-1) mapped to target units (an MR target: the low end of its reference range; a CT target: the
window's minimum). The mask is the one ``prepare`` computes training masks with
(:func:`medxlate.data.bodymask.body_mask_volume`: threshold, largest component, holes filled per
axial slice), computed on the input in its own units and grid, so it does not depend on the model.
"""

from __future__ import annotations

import logging

import torch
from monai.data import MetaTensor

from medxlate.transforms import Preprocessing, restore_grid

logger = logging.getLogger(__name__)

__all__ = ["fill_outside_body", "target_background"]


def target_background(preprocessing: Preprocessing) -> float:
    """The target's background in target units: the model's air (-1) mapped back."""
    return float(preprocessing.model_to_target(torch.tensor(-1.0, dtype=torch.float64)))


def fill_outside_body(
    result: MetaTensor, source: MetaTensor, preprocessing: Preprocessing, where: str = "input volume"
) -> MetaTensor:
    """Set ``result`` to the target's background outside ``source``'s body, as the task says.

    Args:
        result: The translation, ``(1, X, Y, Z)`` on ``source``'s grid, in target units.
        source: The input, ``(1, X, Y, Z)`` in source units with its affine.
        preprocessing: The model's recipe (its task's ``source_body_threshold``, its target range).
        where: The input's name, for the warning below.

    Returns:
        ``result`` itself when the task has no body rule, or when no voxel of ``source`` passes it
        (logged: an input without a body keeps its translation); otherwise a new MetaTensor with
        ``result``'s affine, the background outside the body.
    """
    threshold = preprocessing.task.source_body_threshold
    if threshold is None:
        return result
    from medxlate.data.bodymask import body_mask_volume  # scipy: only when a body rule applies

    body = restore_grid(body_mask_volume(source, threshold), source, resampled=False).as_tensor() > 0
    if not bool(body.any()):
        logger.warning(
            "%s: no body found (no voxel above %g %s); the translation is kept everywhere",
            where,
            threshold,
            "HU" if preprocessing.task.source_modality == "CT" else "in source units",
        )
        return result
    background = torch.tensor(target_background(preprocessing), dtype=result.dtype)
    meta = {k: v for k, v in result.meta.items() if k != "affine"}  # keep what restore_grid carried over
    return MetaTensor(torch.where(body, result.as_tensor(), background), affine=result.affine.clone(), meta=meta)
