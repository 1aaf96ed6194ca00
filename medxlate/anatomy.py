"""Anatomy-aware evaluation of a case: HU structures of a synthetic CT, and labels through a segmenter.

:func:`medxlate.evaluation.evaluate` asks an :class:`AnatomyScorer` for extra per-case columns:

* a model whose target is CT (``mr2ct``, ``xray2ct``): ``dice_bone``, ``hd95_bone``, ``dice_air``,
  ``hd95_air`` (:func:`medxlate.metrics.anatomy.structure_overlaps`), inside the body mask;
* with a segmenter and a dataset whose cases carry a label map (role ``labels`` by default):
  ``dice_label_<id>``, ``hd95_label_<id>`` of the segmenter's labels of the synthetic image
  against the dataset's labels.

A segmenter is a command template holding ``{input}`` and ``{output}`` (e.g.
``"TotalSegmentator -i {input} -o {output} --ml"``; run without a shell, the synthetic image written
as NIfTI to ``{input}``, an integer label map on the same grid expected at ``{output}``) or a Python
callable ``MetaTensor (1, X, Y, Z) -> label map`` (``(1, X, Y, Z)`` or ``(X, Y, Z)``).
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from medxlate.errors import ConfigError, GeometryError, InputDataError
from medxlate.metrics.anatomy import Overlaps, label_overlaps, structure_overlaps

logger = logging.getLogger(__name__)

#: A command template with ``{input}`` and ``{output}``, or a callable image -> label map.
Segmenter = str | Callable[[MetaTensor], Any]
PLACEHOLDERS = ("{input}", "{output}")


def check_segmenter(segmenter: Segmenter) -> None:
    """Refuse a command template without both placeholders or whose program is not found.

    Raises:
        ConfigError: naming the template and what is missing.
    """
    if callable(segmenter):
        return
    if not isinstance(segmenter, str):
        raise ConfigError(f"segmenter: expected a command template or a callable, got {type(segmenter).__name__}")
    try:
        words = shlex.split(segmenter)
    except ValueError as e:
        raise ConfigError(f"segmenter {segmenter!r}: cannot split into words ({e})") from e
    missing = [p for p in PLACEHOLDERS if not any(p in word for word in words)]
    if not words or missing:
        raise ConfigError(
            f"segmenter {segmenter!r}: missing {' and '.join(missing) or 'a program'}; expected a command such as "
            "'mytool {input} {output}' ({input}: the synthetic image as NIfTI, {output}: the label map it writes)"
        )
    if shutil.which(words[0]) is None:
        raise ConfigError(f"segmenter {segmenter!r}: program '{words[0]}' not found (not on PATH, not a file)")


def segment(segmenter: Segmenter, image: MetaTensor, label: str) -> torch.Tensor:
    """Segment one image; the label map ``(X, Y, Z)`` (int64) on the image's grid.

    Args:
        segmenter: Command template or callable (module docstring).
        image: ``(1, X, Y, Z)`` image with its affine.
        label: How messages name the case (an opaque id).

    Raises:
        InputDataError: if the command fails or writes nothing, or the labels are not finite.
        GeometryError: if the label map is not on the image's grid.
    """
    if callable(segmenter):
        result = torch.as_tensor(np.asarray(segmenter(image)))
    else:
        result = _run_command(segmenter, image, label)
    if result.ndim == 4 and result.shape[0] == 1:
        result = result[0]
    if tuple(result.shape) != tuple(image.shape[1:]):
        raise GeometryError(
            f"{label}: the segmenter returned shape {tuple(result.shape)}; expected the image's grid "
            f"{tuple(image.shape[1:])}"
        )
    if not bool(torch.isfinite(result.double()).all()):
        raise InputDataError(f"{label}: the segmenter's label map holds NaN/inf; expected integer labels")
    return result.double().round().long()


def _run_command(template: str, image: MetaTensor, label: str) -> torch.Tensor:
    """Write the image, run the command without a shell, read the label map it wrote."""
    from medxlate.io import load_volume, save_volume

    with tempfile.TemporaryDirectory(prefix="medxlate-segment-") as folder:
        source, target = Path(folder) / "synthetic.nii.gz", Path(folder) / "labels.nii.gz"
        save_volume(image, source)
        words = [w.replace("{input}", str(source)).replace("{output}", str(target)) for w in shlex.split(template)]
        try:
            done = subprocess.run(words, capture_output=True, text=True, check=False)
        except OSError as e:
            raise ConfigError(f"segmenter {template!r}: cannot run '{words[0]}' ({e})") from e
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InputDataError(f"{label}: segmenter {template!r} exited with {done.returncode}: {tail[0]}")
        if not target.is_file():
            raise InputDataError(f"{label}: segmenter {template!r} exited 0 but wrote no label map at {{output}}")
        labels = load_volume(target)
        if not np.allclose(np.asarray(labels.affine), np.asarray(image.affine), atol=1e-3):
            raise GeometryError(f"{label}: the segmenter's label map has another affine than the synthetic image")
        return labels.as_tensor()


@dataclass(frozen=True)
class AnatomyScorer:
    """What anatomy columns an evaluation adds (see the module docstring).

    Attributes:
        structures: Score the HU structures (the model's target is CT).
        segmenter: Segments the synthetic image for the per-label scores (``None``: no labels).
        labels_role: Dataset role holding each case's reference label map.
    """

    structures: bool
    segmenter: Segmenter | None = None
    labels_role: str = "labels"

    def score(
        self, synthetic: MetaTensor, real: torch.Tensor, body: torch.Tensor, files: Mapping[str, Path], label: str
    ) -> tuple[Overlaps, set[int]]:
        """Anatomy columns of one case: ``(overlaps, label ids of its reference label map)``.

        Args:
            synthetic: ``(1, X, Y, Z)`` synthetic image (target units) with its affine.
            real: ``(X, Y, Z)`` real target on the same grid.
            body: ``(X, Y, Z)`` boolean body mask.
            files: The case's role -> file (for the label map).
            label: How messages name the case.

        Raises:
            InputDataError: if the case has no label map, see also :func:`segment`.
        """
        from monai.data.utils import affine_to_spacing

        from medxlate.io import load_volume

        spacing = [float(v) for v in affine_to_spacing(synthetic.affine, r=3)]
        result = Overlaps()
        if self.structures:
            result = structure_overlaps(synthetic[0].as_tensor(), real, body, spacing)
        if self.segmenter is None:
            return result, set()
        if self.labels_role not in files:
            raise InputDataError(
                f"{label}: no '{self.labels_role}' file in the dataset; a segmenter needs each case's label map "
                f"(roles found: {', '.join(sorted(files))})"
            )
        reference = load_volume(files[self.labels_role])[0].as_tensor()
        if tuple(reference.shape) != tuple(real.shape):
            raise GeometryError(
                f"{files[self.labels_role]}: label map shape {tuple(reference.shape)}; expected the target's "
                f"{tuple(real.shape)}"
            )
        reference = reference.double().round().long()
        found = label_overlaps(segment(self.segmenter, synthetic, label), reference, spacing)
        result.values.update(found.values)
        result.reasons.update(found.reasons)
        return result, {int(v) for v in torch.unique(reference) if int(v) != 0}


def align_label_columns(
    per_case: dict[str, dict[str, float]], reasons: dict[str, dict[str, str]], reference_ids: set[int]
) -> None:
    """Give every case the same label columns, in place: the ids found in some case's reference labels.

    A label of no reference (only the segmenter produces it) is dropped with a warning: its ids
    probably do not match the dataset's. A label missing from a case is empty in both of its images.
    """
    produced = {int(n.rsplit("_", 1)[1]) for values in per_case.values() for n in values if n.startswith("dice_label_")}
    if produced - reference_ids:
        logger.warning(
            "segmenter label ids %s appear in no case's reference labels and are not scored; check that the "
            "segmenter's label ids match the dataset's",
            sorted(produced - reference_ids),
        )
    columns = [f"{kind}_label_{i}" for i in sorted(reference_ids) for kind in ("dice", "hd95")]
    for case, values in per_case.items():
        case_reasons = reasons.setdefault(case, {})
        for name in [n for n in case_reasons if "_label_" in n and n not in columns]:
            del case_reasons[name]
        for name in columns:
            if name not in values:
                case_reasons[name] = f"{name.split('_', 1)[1]} is empty in both images"
        aligned = {n: v for n, v in values.items() if "_label_" not in n}
        aligned.update({name: values.get(name, float("nan")) for name in columns})
        values.clear()
        values.update(aligned)
        if not case_reasons:
            del reasons[case]


def anatomy_scorer(structures: bool, segmenter: Segmenter | None, labels: str, lifted: bool) -> AnatomyScorer:
    """The scorer of an evaluation, its segmenter checked first.

    Args:
        structures: Score the HU structures (the model's target is CT, default protocol).
        segmenter: Command template or callable, or ``None``.
        labels: Dataset role of the reference label maps.
        lifted: The model is X-ray -> CT (no segmenter: its output is on the model grid).

    Raises:
        ConfigError: if the segmenter is malformed, not found, or given for an X-ray -> CT model.
    """
    if segmenter is not None:
        if lifted:
            raise ConfigError(
                "evaluate: a segmenter (per-label Dice/HD95) is not supported for X-ray -> CT models; their "
                "synthetic CT is scored on the model grid, which the dataset's label maps are not on"
            )
        check_segmenter(segmenter)
    return AnatomyScorer(structures, segmenter, labels)


def by_metric(reasons: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Case -> metric -> reason, turned into metric -> case -> reason."""
    out: dict[str, dict[str, str]] = {}
    for case, found in reasons.items():
        for metric, reason in found.items():
            out.setdefault(metric, {})[case] = reason
    return out
