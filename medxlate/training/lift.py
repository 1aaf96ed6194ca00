"""Training pieces of X-ray -> CT (tasks with a ``projection`` geometry): data, validation, step options.

The training loop (:mod:`medxlate.training.loop`) stays one loop; for a projection task it asks this
module for the sampler (DRR items, :class:`medxlate.data.drr.DrrTrainingSet`), the validation cases
(clean views of each validation CT on the model grid), the validation function and the extra
arguments of the GAN step (the unconditional discriminator, the ``projection`` loss context).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from medxlate.config import ExperimentConfig
from medxlate.data.dataset import Dataset
from medxlate.data.drr import DrrTrainingSet, GridCT, build_grid_cache, ct_cases
from medxlate.errors import InputDataError
from medxlate.inference.strategy import LiftStrategy
from medxlate.models.loss_terms import ProjectionContext, weighted_terms
from medxlate.training.validation import ValidationResult, lift_case_metrics
from medxlate.transforms import Preprocessing
from medxlate.xray.cases import LiftCase, render_views

__all__ = ["drr_training_set", "lift_strategy", "load_lift_data", "step_options", "validate_lift"]


def lift_strategy(cfg: ExperimentConfig) -> LiftStrategy:
    """The ``lift`` inference strategy of an X-ray -> CT config (views, grid and DRR geometry)."""
    xray = cfg.xray
    assert xray is not None  # filled in by ExperimentConfig for projection tasks
    return LiftStrategy(tuple(xray.views), xray.size, xray.fov_mm, xray.sdd_mm, xray.sad_mm)


def load_lift_data(cfg: ExperimentConfig, dataset: Dataset, runtime: Any) -> tuple[DrrTrainingSet, list[LiftCase]]:
    """The DRR training set and the validation cases, over the on-disk model-grid cache.

    Rank 0 builds the cache while the other ranks wait, then they open it.

    Raises:
        InputDataError: if a split is empty or a CT covers too little of the field (named).
    """
    xray = cfg.xray
    assert xray is not None
    train_cases, val_cases = ct_cases(dataset, "train"), ct_cases(dataset, "val")
    if not train_cases or not val_cases:
        raise InputDataError(
            f"{dataset.root}: need at least one 'train' and one 'val' case, found "
            f"{len(train_cases)} train and {len(val_cases)} val"
        )
    cache_dir = cfg.data.cache_dir if cfg.data.cache_dir is not None else Path(cfg.train.output_dir) / "data_cache"
    cases = [*train_cases, *val_cases]

    def build() -> list[GridCT]:
        return build_grid_cache(dataset, cases, xray.size, xray.fov_mm, xray.min_coverage, cache_dir)

    if runtime.is_main:
        cached = build()
    runtime.barrier()
    if not runtime.is_main:
        cached = build()
    samples = drr_training_set(cfg, cached[: len(train_cases)])
    geometries = samples.geometries
    return samples, [_clean_case(volume, geometries) for volume in cached[len(train_cases) :]]


def drr_training_set(cfg: ExperimentConfig, volumes: Sequence[GridCT]) -> DrrTrainingSet:
    """The DRR training items over cached model-grid CTs, with the config's views, poses and augmentation."""
    from medxlate.xray.drr_data import ViewAugmentation

    xray = cfg.xray
    assert xray is not None  # filled in by ExperimentConfig for projection tasks
    return DrrTrainingSet(
        volumes,
        lift_strategy(cfg).geometries(),
        cfg.data.source_window,
        xray.items_per_volume,
        xray.pose_jitter_deg,
        ViewAugmentation() if xray.augment else None,
        cfg.train.seed,
    )


def _clean_case(volume: GridCT, geometries: Sequence[Any]) -> LiftCase:
    ct = torch.from_numpy(np.array(volume.ct(), dtype=np.float32))[None]
    mask = torch.from_numpy(np.array(volume.mask(), dtype=bool))[None]
    views = render_views(ct[None], volume.affine, geometries)[0]
    return LiftCase(MetaTensor(ct, affine=volume.affine), mask, views, {**volume.record, "id": volume.id})


def step_options(cfg: ExperimentConfig, prep: Preprocessing) -> dict[str, Any]:
    """Keyword arguments of :func:`~medxlate.training.steps.train_step` beyond the pix2pix ones.

    Same-grid tasks: the configured extra terms and a conditional discriminator. Projection tasks:
    the discriminator judges the CT alone, and the ``projection`` term gets the views' geometry.
    """
    from medxlate.tasks import get_task

    options: dict[str, Any] = {"terms": weighted_terms(cfg.loss.terms)}
    task = get_task(cfg.data.task)
    options["conditional"] = task.conditional_discriminator
    if task.geometry == "projection":
        strategy = lift_strategy(cfg)
        options["projection"] = ProjectionContext(strategy.grid_affine(), strategy.geometries(), prep.source_window)
    return options


def validate_lift(
    generator: torch.nn.Module,
    cases: Sequence[LiftCase],
    prep: Preprocessing,
    strategy: LiftStrategy,
    device: torch.device,
    bf16: bool = True,
) -> ValidationResult:
    """Predict each validation CT from its clean views and compare in HU on the model grid.

    Metrics per case (:func:`~medxlate.training.validation.lift_case_metrics`): 3D SSIM/PSNR/MAE,
    whole grid and inside the body, with the CT window width as data range, and the re-projection
    agreement with the input views. The montage shows the first case.
    """
    from medxlate.metrics.summary import finite_case_means

    was_training = generator.training
    generator.eval()
    per_case: dict[str, dict[str, float]] = {}
    montage = None
    for case in cases:
        values, predicted = lift_case_metrics(generator, case, prep, strategy, device, bf16)
        per_case[str(case.record["id"])] = values
        if montage is None:
            from medxlate.training.montage import make_lift_montage

            real = case.ct_hu.as_tensor()[0]
            montage = make_lift_montage(
                case.views, predicted, real, prep.source_window, [str(v) for v in strategy.views]
            )
    generator.train(was_training)
    return ValidationResult(finite_case_means(per_case, "validation").means, per_case, montage)
