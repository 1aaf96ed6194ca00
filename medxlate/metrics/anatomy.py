"""Anatomy-aware scores: Dice and HD95 (mm) of structures, between a synthetic and a real image.

Two kinds of structure:

* **HU structures of a CT** (:func:`hu_structures`), inside the body mask: ``bone`` = voxels at or
  above :data:`BONE_HU` (250 HU: cortical and dense trabecular bone; iodinated contrast in large
  vessels can reach it too), ``air`` = voxels at or below :data:`AIR_HU` (-400 HU: lungs, airways,
  bowel gas). The thresholds are applied to the synthetic and the real CT alike.
* **Labels** (:func:`label_overlaps`): each non-zero id of two integer label maps.

Dice and the 95th-percentile Hausdorff distance come from MONAI (``DiceMetric``,
``HausdorffDistanceMetric(percentile=95)`` with the voxel spacing, so HD95 is in mm): the larger of
the two directed 95th percentiles of the distances between the structures' surfaces.

An empty structure gives no distance, so:

* empty in both images: Dice and HD95 are NaN (nothing to compare);
* empty in exactly one image: Dice is 0 (the structure was missed or invented entirely), HD95 is NaN.

Each NaN comes with a reason (:attr:`Overlaps.reasons`); evaluation leaves NaN values out of the means
(:func:`medxlate.metrics.summary.finite_case_means`) and lists the reasons in its summary.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from medxlate.errors import GeometryError

__all__ = ["AIR_HU", "BONE_HU", "Overlaps", "hu_structures", "label_overlaps", "overlaps", "structure_overlaps"]

#: Bone: real or synthetic CT at or above this value (HU), inside the body.
BONE_HU = 250.0
#: Air / lung: real or synthetic CT at or below this value (HU), inside the body.
AIR_HU = -400.0


@dataclass
class Overlaps:
    """Dice and HD95 of named structures.

    Attributes:
        values: ``dice_<name>`` and ``hd95_<name>`` (mm) per structure; NaN where undefined.
        reasons: Metric name -> why it is NaN (only the NaN ones).
    """

    values: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def hu_structures(ct: torch.Tensor, body: torch.Tensor) -> dict[str, torch.Tensor]:
    """Boolean ``bone`` and ``air`` masks of a CT in HU, inside the body (see the module docstring).

    Args:
        ct: ``(X, Y, Z)`` CT in HU.
        body: ``(X, Y, Z)`` boolean body mask on the same grid.
    """
    inside = body.to(torch.bool)
    return {"bone": inside & (ct >= BONE_HU), "air": inside & (ct <= AIR_HU)}


def overlaps(synthetic: dict[str, torch.Tensor], real: dict[str, torch.Tensor], spacing: Sequence[float]) -> Overlaps:
    """Dice and HD95 (mm) of each named structure: synthetic against real.

    Args:
        synthetic: Name -> ``(X, Y, Z)`` boolean mask in the synthetic image.
        real: Name -> boolean mask in the real image (same names, same grid).
        spacing: Voxel size in mm along X, Y, Z.

    Returns:
        The values and the reasons of undefined ones (module docstring).

    Raises:
        GeometryError: if a structure's masks differ in shape or are not 3D.
    """
    from monai.metrics import DiceMetric, HausdorffDistanceMetric

    result = Overlaps()
    both: list[str] = []
    for name, real_mask in real.items():
        pred = synthetic[name]
        if pred.shape != real_mask.shape or real_mask.ndim != 3:
            raise GeometryError(
                f"structure '{name}': synthetic {tuple(pred.shape)} and real {tuple(real_mask.shape)} must be the "
                "same 3D grid"
            )
        result.values[f"dice_{name}"] = result.values[f"hd95_{name}"] = float("nan")
        in_pred, in_real = bool(pred.any()), bool(real_mask.any())
        if in_pred and in_real:
            both.append(name)
            continue
        where = "both images" if not (in_pred or in_real) else "the synthetic image" if in_real else "the real image"
        result.reasons[f"hd95_{name}"] = f"{name} is empty in {where}"
        if in_pred or in_real:
            result.values[f"dice_{name}"] = 0.0
        else:
            result.reasons[f"dice_{name}"] = f"{name} is empty in both images"
    if both:
        pred = torch.stack([synthetic[n].to(torch.bool) for n in both])[None].float()  # (1, N, X, Y, Z)
        ref = torch.stack([real[n].to(torch.bool) for n in both])[None].float()
        dice = DiceMetric(include_background=True, reduction="none")(pred, ref)[0]
        with warnings.catch_warnings():  # MONAI 1.5+ passes its own deprecated argument internally
            warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
            hd95 = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")(
                pred, ref, spacing=[float(s) for s in spacing]
            )[0]
        for index, name in enumerate(both):
            result.values[f"dice_{name}"] = float(dice[index])
            result.values[f"hd95_{name}"] = float(hd95[index])
    return result


def structure_overlaps(
    synthetic_ct: torch.Tensor, real_ct: torch.Tensor, body: torch.Tensor, spacing: Sequence[float]
) -> Overlaps:
    """Dice and HD95 of the HU structures (``bone``, ``air``) of a synthetic CT against the real CT.

    Args:
        synthetic_ct: ``(X, Y, Z)`` synthetic CT in HU.
        real_ct: ``(X, Y, Z)`` real CT in HU on the same grid.
        body: ``(X, Y, Z)`` boolean body mask.
        spacing: Voxel size in mm.

    Returns:
        ``dice_bone``, ``hd95_bone``, ``dice_air``, ``hd95_air`` and the reasons of NaN values.
    """
    return overlaps(hu_structures(synthetic_ct, body), hu_structures(real_ct, body), spacing)


def label_overlaps(
    segmentation: torch.Tensor, labels: torch.Tensor, spacing: Sequence[float], ids: Sequence[int] | None = None
) -> Overlaps:
    """Dice and HD95 per label id (``dice_label_<id>``, ``hd95_label_<id>``): segmentation against labels.

    Args:
        segmentation: ``(X, Y, Z)`` integer label map of the synthetic image.
        labels: ``(X, Y, Z)`` integer reference label map on the same grid.
        spacing: Voxel size in mm.
        ids: Label ids to score; default: every non-zero id of either map.
    """
    seg, ref = segmentation.round().long(), labels.round().long()
    if ids is None:
        ids = sorted(int(v) for v in torch.unique(torch.cat([seg.flatten(), ref.flatten()])) if int(v) != 0)
    names = {f"label_{i}": i for i in ids}
    return overlaps({n: seg == i for n, i in names.items()}, {n: ref == i for n, i in names.items()}, spacing)
