"""The one training loop: ``fit(cfg, tracker)``."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from medxlate import __version__
from medxlate.checkpoint import load_checkpoint, save_checkpoint
from medxlate.config import ExperimentConfig, flatten_config
from medxlate.data import read_dataset
from medxlate.data.slices import SliceDataset
from medxlate.data.volumes import load_paired_volumes
from medxlate.errors import ConfigError, InputDataError
from medxlate.inference import InferenceStrategy, resolve_device, strategy_to_dict
from medxlate.io.atomic import atomic_path, write_bytes_atomic
from medxlate.tracking import NullTracker, Tracker
from medxlate.training.setup import build_gan, generator_spec, inference_strategy, linear_decay
from medxlate.training.steps import GanModules, train_step
from medxlate.training.validation import ValidationResult, validate
from medxlate.transforms import Preprocessing, TrainingDomain

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished training run leaves behind."""

    run_id: str | None
    checkpoint: Path
    metrics: dict[str, float]
    montage: Path | None = None
    per_case: dict[str, dict[str, float]] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_preprocessing(cfg: ExperimentConfig, divisible: int) -> Preprocessing:
    """The preprocessing recipe implied by a config (target reference range still unknown)."""
    data = cfg.data
    return Preprocessing(
        source_window=data.source_window,
        target_percentiles=data.target_percentiles,
        pixdim=data.pixdim,
        context_slices=data.context_slices,
        divisible=divisible,
    )


@dataclass
class _Run:
    """Everything one training run holds between epochs."""

    cfg: ExperimentConfig
    modules: GanModules
    schedulers: list[Any]
    loader_rng: torch.Generator
    prep: Preprocessing
    dataset: Any
    in_channels: int
    device: torch.device
    tracker: Tracker
    checkpoint: Path
    dataset_fingerprint: str | None = None
    run_id: str | None = None

    @property
    def strategy(self) -> InferenceStrategy:
        """How validation (and later the Translator) runs the generator over a volume."""
        return inference_strategy(self.cfg)

    def end_of_epoch(self, epoch: int, step: int, val_volumes: list[Any]) -> ValidationResult:
        """Step the schedules, validate, log, and checkpoint (atomically)."""
        cfg = self.cfg
        for scheduler in self.schedulers:
            scheduler.step()
        result = validate(self.modules.generator, val_volumes, self.prep, self.strategy, self.device, cfg.train.bf16)
        self.tracker.log_metrics({f"val/{k}": v for k, v in result.metrics.items()}, step=epoch + 1)
        self.tracker.log_metrics({"lr": self.schedulers[0].get_last_lr()[0], "epoch": epoch + 1}, step=epoch + 1)
        if cfg.tracking.log_images and result.montage is not None:
            self.tracker.log_image(result.montage, key="val_montage", step=epoch + 1)
        save_checkpoint(self.payload(epoch, step, result.metrics), self.checkpoint)
        logger.info("epoch %d/%d: %s", epoch + 1, cfg.train.epochs, _summary(result.metrics))
        return result

    def payload(self, epoch: int, step: int, metrics: dict[str, float]) -> dict[str, Any]:
        """The checkpoint content after ``epoch`` (0-based)."""
        modules = self.modules
        return {
            "generator": modules.generator.state_dict(),
            "discriminator": modules.discriminator.state_dict(),
            "optimizer_g": modules.optimizer_g.state_dict(),
            "optimizer_d": modules.optimizer_d.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "loader_rng": self.loader_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch + 1,
            "step": step,
            "config": self.cfg.model_dump(mode="json"),
            "preprocessing": self.prep.to_dict(),
            "generator_spec": generator_spec(self.cfg, self.in_channels),
            "inference": strategy_to_dict(self.strategy),
            "source_modality": self.dataset.source_modality,
            "target_modality": self.dataset.target_modality,
            "metrics": dict(metrics),
            "dataset_fingerprint": self.dataset_fingerprint,
            "mlflow_run_id": self.run_id,
            "medxlate_version": __version__,
        }

    def log_final_artifacts(self, result: ValidationResult | None) -> None:
        """Montage PNG, checkpoint and resolved config into the tracker."""
        out_dir = self.checkpoint.parent
        montage_path = _write_montage(result, out_dir)
        self.tracker.log_artifact(self.checkpoint, "model")
        if montage_path is not None:
            self.tracker.log_artifact(montage_path, "images")
        config_path = out_dir / "config.yaml"
        _write_config(self.cfg, config_path)
        self.tracker.log_artifact(config_path, "config")


def fit(cfg: ExperimentConfig, tracker: Tracker | None = None) -> TrainResult:
    """Train a pix2pix model as configured, validating every epoch and checkpointing.

    Args:
        cfg: Validated experiment config.
        tracker: Where params/metrics/images/artifacts go; ``None`` records nothing.

    Returns:
        Run id, final checkpoint path and final validation metrics.

    Raises:
        InputDataError: if the dataset is unusable (no train or val cases, mismatched pairs).
        CheckpointError: if ``train.resume`` points at an unusable checkpoint.
    """
    seed_everything(cfg.train.seed)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    device = resolve_device(cfg.train.device)
    dataset = read_dataset(cfg.data.dataset)
    in_channels = 2 * cfg.data.context_slices + 1
    modules, divisible = build_gan(cfg, in_channels, device)
    prep, train_volumes, val_volumes = _load_volumes(cfg, dataset, divisible)
    slices = SliceDataset(train_volumes, cfg.data.context_slices, divisible, cfg.data.flip_prob)
    loader_rng = torch.Generator().manual_seed(cfg.train.seed)
    loader = DataLoader(slices, batch_size=cfg.data.batch_size, shuffle=True, generator=loader_rng)
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(cfg.train.epochs, cfg.train.decay_epochs))
        for opt in (modules.optimizer_g, modules.optimizer_d)
    ]
    start_epoch, step, resume_run_id = 0, 0, None
    if cfg.train.resume is not None:
        start_epoch, step, resume_run_id = _restore(cfg.train.resume, modules, schedulers, loader_rng)
    out_dir = Path(cfg.train.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(
        cfg,
        modules,
        schedulers,
        loader_rng,
        prep,
        dataset,
        in_channels,
        device,
        tracker or NullTracker(),
        out_dir / "last.pt",
        dataset_fingerprint=_fingerprint_hash(dataset.root),
    )
    task = f"{dataset.source_modality}->{dataset.target_modality}"
    run.run_id = run.tracker.start(
        cfg.experiment_name,
        cfg.name,
        flatten_config(cfg),
        tags={"medxlate.version": __version__, "medxlate.task": task},
        resume_run_id=resume_run_id,
    )
    adversarial = _adversarial(cfg)
    result: ValidationResult | None = None
    status = "FAILED"
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            step = _train_epoch(cfg, modules, loader, adversarial, run.tracker, device, epoch, step)
            result = run.end_of_epoch(epoch, step, val_volumes)
        run.log_final_artifacts(result)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        run.tracker.end(status)
    if result is None:  # resumed a run that had already finished all epochs
        result = validate(modules.generator, val_volumes, prep, run.strategy, device, cfg.train.bf16)
    return TrainResult(
        run_id=run.run_id,
        checkpoint=run.checkpoint,
        metrics=result.metrics,
        montage=out_dir / "val_montage.png" if result.montage is not None else None,
        per_case=result.per_case,
    )


def _load_volumes(cfg: ExperimentConfig, dataset: Any, divisible: int) -> tuple[Preprocessing, list[Any], list[Any]]:
    """Train/val volumes in model space, and the preprocessing with its target reference range
    (the mean of the training volumes' percentile values, used to map outputs back to MR units) and
    the training domain (spacing, source intensities, field of view; used at inference)."""
    train_cases, val_cases = dataset.split("train"), dataset.split("val")
    if not train_cases or not val_cases:
        raise InputDataError(
            f"{dataset.root}: need at least one 'train' and one 'val' case, found "
            f"{len(train_cases)} train and {len(val_cases)} val"
        )
    prep = make_preprocessing(cfg, divisible)
    train_volumes = load_paired_volumes(train_cases, prep)
    val_volumes = load_paired_volumes(val_cases, prep)
    reference = [float(np.mean([v.target_range[i] for v in train_volumes])) for i in (0, 1)]
    domain = TrainingDomain.from_volumes([v.source for v in train_volumes], prep.source_window)
    prep = replace(prep, target_range=(reference[0], reference[1]), domain=domain)
    return prep, train_volumes, val_volumes


def _train_epoch(
    cfg: ExperimentConfig,
    modules: GanModules,
    loader: DataLoader,
    adversarial: Any,
    tracker: Tracker,
    device: torch.device,
    epoch: int,
    step: int,
) -> int:
    modules.generator.train()
    modules.discriminator.train()
    limit = cfg.train.max_steps_per_epoch or len(loader)
    progress = tqdm(
        loader,
        total=min(limit, len(loader)),
        desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
        leave=False,
        dynamic_ncols=True,
    )
    for batch_number, batch in enumerate(progress):
        if batch_number >= limit:
            break
        losses = train_step(
            modules,
            batch["source"].to(device),
            batch["target"].to(device),
            adversarial,
            cfg.loss.lambda_l1,
            cfg.train.bf16,
        )
        step += 1
        if step % cfg.train.log_every == 0 or batch_number == 0:
            values = {f"train/{name}": float(value) for name, value in losses.items()}
            tracker.log_metrics(values, step=step)
            progress.set_postfix(d=f"{values['train/loss_d']:.3f}", g=f"{values['train/loss_g']:.3f}")
    progress.close()
    return step


def _adversarial(cfg: ExperimentConfig) -> Any:
    from medxlate.models import get_adversarial_loss

    return get_adversarial_loss(cfg.loss.adversarial)


def _fingerprint_hash(root: Path) -> str | None:
    """Hash of the dataset's fingerprint.json, if the dataset has a current one."""
    from medxlate.data import fingerprint_hash, load_fingerprint

    fingerprint = load_fingerprint(root)
    return fingerprint_hash(fingerprint) if fingerprint else None


def _restore(
    path: Path, modules: GanModules, schedulers: list[Any], loader_rng: torch.Generator
) -> tuple[int, int, str | None]:
    content = load_checkpoint(path)
    try:
        modules.generator.load_state_dict(content["generator"])
        modules.discriminator.load_state_dict(content["discriminator"])
        modules.optimizer_g.load_state_dict(content["optimizer_g"])
        modules.optimizer_d.load_state_dict(content["optimizer_d"])
        for scheduler, state in zip(schedulers, content["schedulers"], strict=True):
            scheduler.load_state_dict(state)
        loader_rng.set_state(content["loader_rng"])
        torch.set_rng_state(content["torch_rng"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise ConfigError(f"train.resume: {path} does not match this config's model: {e}") from e
    return int(content["epoch"]), int(content["step"]), content.get("mlflow_run_id")


def _write_montage(result: ValidationResult | None, out_dir: Path) -> Path | None:
    if result is None or result.montage is None:
        return None
    from PIL import Image

    path = out_dir / "val_montage.png"
    with atomic_path(path) as tmp:
        Image.fromarray(result.montage).save(tmp, format="PNG")
    return path


def _write_config(cfg: ExperimentConfig, path: Path) -> None:
    import yaml

    write_bytes_atomic(path, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).encode("utf-8"))


def _summary(values: dict[str, float]) -> str:
    keys = ("ssim_body", "psnr_body", "mae_body")
    return ", ".join(f"{k}={values[k]:.4g}" for k in keys if k in values)
