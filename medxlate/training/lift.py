"""Training pieces of X-ray -> CT (tasks with a ``projection`` geometry): data, validation, step options.

The training loop (:mod:`medxlate.training.loop`) stays one loop; for a projection task it asks this
module for the sampler (DRR items, :class:`medxlate.data.drr.DrrTrainingSet`), the validation cases
(clean views of each validation CT on the model grid), the validation function and the extra
arguments of the GAN step (the unconditional discriminator, the ``projection`` loss context).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from medxlate.config import ExperimentConfig
from medxlate.data.ct_source import CtSource
from medxlate.data.dataset import DATASET_FILE
from medxlate.data.drr import DrrTrainingSet, GridCT, build_grid_cache
from medxlate.errors import InputDataError
from medxlate.inference.strategy import LiftStrategy
from medxlate.models.loss_terms import ProjectionContext, weighted_terms
from medxlate.training.validation import ValidationResult
from medxlate.transforms import Preprocessing
from medxlate.xray.cases import LiftCase, render_views

__all__ = [
    "DIGEST_MEMO",
    "drr_training_set",
    "lift_cache_dir",
    "lift_strategy",
    "load_lift_data",
    "read_lift_source",
    "step_options",
    "validate_lift",
]

logger = logging.getLogger(__name__)

#: Remembered file digests of a CT folder, in the data cache (:func:`medxlate.data.ct_source.read_ct_source`).
DIGEST_MEMO = "xray_file_digests.json"


def lift_strategy(cfg: ExperimentConfig) -> LiftStrategy:
    """The ``lift`` inference strategy of an X-ray -> CT config (views, grid and DRR geometry)."""
    xray = cfg.xray
    assert xray is not None  # filled in by ExperimentConfig for projection tasks
    return LiftStrategy(tuple(xray.views), xray.size, xray.fov_mm, xray.sdd_mm, xray.sad_mm)


def lift_cache_dir(cfg: ExperimentConfig) -> Path:
    """Where the model-grid cache (and a CT folder's digest memo) live: ``data.cache_dir`` or
    ``<train.output_dir>/data_cache``."""
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir is not None else Path(cfg.train.output_dir) / "data_cache"


def read_lift_source(cfg: ExperimentConfig) -> CtSource:
    """The CT cases of ``data.dataset``: a prepared dataset (its splits) or a folder of CT volumes
    (split by ``xray.val_fraction`` and ``xray.split_seed``; file digests remembered in the data cache).

    Raises:
        InputDataError: see :func:`medxlate.data.ct_source.read_ct_source`.
    """
    from medxlate.data.ct_source import read_ct_source

    xray = cfg.xray
    assert xray is not None
    source = read_ct_source(cfg.data.dataset, xray.val_fraction, xray.split_seed, lift_cache_dir(cfg) / DIGEST_MEMO)
    defaults = type(xray).model_fields
    folder_only = [name for name in ("val_fraction", "split_seed") if getattr(xray, name) != defaults[name].default]
    if folder_only and (source.root / DATASET_FILE).is_file():
        logger.warning(
            "%s: a prepared dataset keeps its own splits; %s apply to a folder of CT volumes only",
            source.root,
            ", ".join(f"xray.{name}" for name in folder_only),
        )
    return source


def load_lift_data(cfg: ExperimentConfig, source: CtSource, runtime: Any) -> tuple[DrrTrainingSet, list[LiftCase]]:
    """The DRR training set and the validation cases, over the on-disk model-grid cache.

    Rank 0 builds the cache while the other ranks wait, then they open it.

    Args:
        cfg: The experiment config.
        source: The CT cases (:func:`read_lift_source`).
        runtime: The distributed runtime (rank 0 builds the cache).

    Raises:
        InputDataError: if a split is empty, or a CT is unreadable, not a 3D volume or covers too
            little of the field (named).
    """
    xray = cfg.xray
    assert xray is not None
    train_cases, val_cases = source.split("train"), source.split("val")
    if not train_cases or not val_cases:
        raise InputDataError(
            f"{source.root}: need at least one 'train' and one 'val' case, found "
            f"{len(train_cases)} train and {len(val_cases)} val"
        )
    cases = [*train_cases, *val_cases]

    def build() -> list[GridCT]:
        return build_grid_cache(cases, xray.size, xray.fov_mm, xray.min_coverage, lift_cache_dir(cfg))

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

    Metrics per case (:func:`medxlate.inference.lift.evaluate_lift_case`, as ``evaluate`` does): 3D SSIM/PSNR/MAE,
    whole grid and inside the body, with the CT window width as data range, and the re-projection
    agreement with the input views. The montage shows the first case.
    """
    from medxlate.inference.lift import evaluate_lift_case
    from medxlate.metrics.summary import finite_case_means

    was_training = generator.training
    generator.eval()
    per_case: dict[str, dict[str, float]] = {}
    montage = None
    for case in cases:
        label = f"validation case '{case.record['id']}'"
        reconstructed, values = evaluate_lift_case(generator, case, strategy, prep, device, bf16, label=label)
        predicted = reconstructed.as_tensor()[0]
        per_case[str(case.record["id"])] = values
        if montage is None:
            from medxlate.training.montage import make_lift_montage

            real = case.ct_hu.as_tensor()[0]
            montage = make_lift_montage(
                case.views, predicted, real, prep.source_window, [str(v) for v in strategy.views]
            )
    generator.train(was_training)
    return ValidationResult(finite_case_means(per_case, "validation").means, per_case, montage)
