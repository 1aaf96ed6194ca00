"""Validation on held-out volumes: whole-volume translation and SSIM/PSNR/MAE in target units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medxlate.data.volumes import PairedVolume
from medxlate.inference import InferenceStrategy, infer_volume
from medxlate.inference.finite import check_finite_output
from medxlate.metrics.summary import finite_case_means
from medxlate.metrics.volume import volume_metrics  # re-exported: callers import it from here too
from medxlate.training.montage import make_montage, panel_titles
from medxlate.transforms import Preprocessing, unit_to_range

__all__ = ["ValidationResult", "validate", "volume_metrics"]


@dataclass(frozen=True)
class ValidationResult:
    """Mean metrics over the validation volumes, per-case values and one montage."""

    metrics: dict[str, float]
    per_case: dict[str, dict[str, float]]
    montage: np.ndarray | None


def validate(
    generator: torch.nn.Module,
    volumes: Sequence[PairedVolume],
    prep: Preprocessing,
    strategy: InferenceStrategy,
    device: torch.device,
    bf16: bool = True,
) -> ValidationResult:
    """Translate each validation volume and compare with its real target in target units.

    The volume is translated exactly as the Translator does (same strategy, same inferer). The
    synthetic volume is mapped to target units as at inference (an MR target with the training
    reference range; a CT target through its window, in HU); the real target is restored to its own
    units. PSNR/SSIM use each reference's max - min as data range for an MR target and the CT window
    width for a CT target (:attr:`Preprocessing.target_data_range`).
    A metric that is NaN/inf for a case is left out of the mean with a warning
    (:func:`medxlate.metrics.summary.finite_case_means`). The montage panels are titled with the
    task's modalities.

    Raises:
        NonFiniteError: if the generator produces NaN/inf for a validation volume (training diverged).
    """
    was_training = generator.training
    generator.eval()
    per_case: dict[str, dict[str, float]] = {}
    montage = None
    for volume in volumes:
        output = infer_volume(generator, volume.source.as_tensor(), strategy, prep.divisible, device, bf16)
        check_finite_output(output, f"validation case '{volume.case_id}'")
        synthetic = prep.model_to_target(output)[0]
        real = unit_to_range(volume.target.as_tensor(), volume.target_range)[0]
        mask = volume.mask[0]
        per_case[volume.case_id] = volume_metrics(synthetic, real, mask, prep.target_data_range)
        if montage is None:
            body_slices = torch.nonzero(mask.flatten(0, 1).any(dim=0)).flatten()
            z = int(body_slices[len(body_slices) // 2]) if len(body_slices) else real.shape[-1] // 2
            source = unit_to_range(volume.source.as_tensor()[0], prep.source_unit_range)
            titles = panel_titles(prep.task.source_modality, prep.task.target_modality)
            if prep.task.source_modality == "CT":
                montage = make_montage(source, synthetic, real, z, titles=titles)
            else:  # MR in model units; CT target shown in a soft-tissue window
                montage = make_montage(source, synthetic, real, z, (-1.0, 1.0), (-400.0, 400.0), titles)
    generator.train(was_training)
    means = finite_case_means(per_case, "validation").means
    return ValidationResult(metrics=means, per_case=per_case, montage=montage)
