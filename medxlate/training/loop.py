"""The one training loop: ``fit(cfg, tracker)``."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from medxlate import __version__
from medxlate.config import ExperimentConfig, flatten_config
from medxlate.data import read_dataset
from medxlate.data.cache import LazyVolumes, MappedSources, VolumeReader, build_cache
from medxlate.data.ct_source import CtSource
from medxlate.data.roles import orient_dataset
from medxlate.data.samplers import PatchSampler, SliceSampler
from medxlate.errors import ConfigError, InputDataError
from medxlate.inference import strategy_to_dict
from medxlate.io.atomic import atomic_path, clean_stale_temporaries, write_bytes_atomic
from medxlate.tasks import Task, get_task
from medxlate.tracking import NullTracker, Tracker
from medxlate.training.engine import Trainer
from medxlate.training.lift import lift_strategy, load_lift_data, read_lift_source, step_options, validate_lift
from medxlate.training.outputs import claim_output_dir
from medxlate.training.resume import CHECKPOINT_NAME, INFERENCE_NAME, resume_path
from medxlate.training.runtime import (
    Runtime,
    apply_speed_settings,
    check_compile_available,
    prepare_module,
    quiet_other_ranks,
    start_runtime,
    stop_runtime,
)
from medxlate.training.sampler import ResumableBatchSampler
from medxlate.training.setup import build_gan, generator_spec, inference_strategy, linear_decay
from medxlate.training.signals import StopRequest
from medxlate.training.steps import GanModules
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
    rank: int = 0
    registered_model: str | None = None  # models:/NAME/VERSION when tracking.register_as is set
    model: Path | None = None  # the slim inference checkpoint (rank 0 of a finished run)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_preprocessing(cfg: ExperimentConfig, divisible: int) -> Preprocessing:
    """The preprocessing recipe implied by a config (target reference range still unknown)."""
    data = cfg.data
    return Preprocessing(
        task=get_task(data.task),
        source_window=data.source_window,
        target_percentiles=data.target_percentiles,
        pixdim=data.pixdim,
        context_slices=data.context_slices,
        divisible=divisible,
    )


def fit(cfg: ExperimentConfig, tracker: Tracker | None = None) -> TrainResult:
    """Train a pix2pix model as configured, validating every epoch and checkpointing.

    Under ``torchrun`` every process calls this; they train with DDP and only rank 0 has side
    effects (tracker, checkpoints, montage, console). SIGTERM/SIGINT stop after the current step
    with a checkpoint (see :mod:`medxlate.training.signals`).
    The output folder is claimed first (:func:`~medxlate.training.outputs.claim_output_dir`, by
    rank 0; the other ranks only check it): locked against a second training, and refused if it
    holds an earlier run unless ``train.resume`` or ``train.overwrite`` is set.

    Args:
        cfg: Validated experiment config.
        tracker: Where params/metrics/images/artifacts go; ``None`` records nothing.

    Returns:
        Run id, final checkpoint path and final validation metrics (rank 0; other ranks get the
        checkpoint path and empty metrics).

    Raises:
        InputDataError: if the dataset is unusable (no train or val cases, mismatched pairs).
        ConfigError: for a bad distributed environment, a batch size not divisible across ranks,
            or ``train.compile`` without a compiler — all before any work.
        CheckpointError: if ``train.resume`` points at an unusable or incompatible checkpoint.
        TrainingInterrupted: after SIGTERM/SIGINT, once the checkpoint is written.
        OutputError: if the output folder holds an earlier run or collides with the dataset.
        FolderLockedError: if another process is training into the same folder.
    """
    main = int(os.environ.get("RANK", "0")) == 0  # before the rendezvous: a refused folder stops every rank
    with claim_output_dir(cfg, lock=main):
        runtime = start_runtime(cfg.train.device, cfg.data.batch_size, cfg.train.dist_timeout_s)
        try:
            return _fit(cfg, tracker if runtime.is_main else None, runtime)
        finally:
            stop_runtime(runtime)


def _fit(cfg: ExperimentConfig, tracker: Tracker | None, runtime: Runtime) -> TrainResult:
    quiet_other_ranks(runtime)
    if cfg.train.compile:
        check_compile_available(runtime.device)
    out_dir = Path(cfg.train.output_dir)
    resume_from = resume_path(cfg.train.resume, out_dir)
    if runtime.is_main:
        clean_stale_temporaries(out_dir)
    seed_everything(cfg.train.seed)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    apply_speed_settings(runtime.device, cfg.train.cudnn_benchmark)
    device = runtime.device
    task = get_task(cfg.data.task)
    projection = task.geometry == "projection"
    # X-ray -> CT reads CT volumes (a prepared dataset's CT role or a folder of CTs); views are rendered from them
    dataset = _read_ct_source(cfg, runtime) if projection else orient_dataset(read_dataset(cfg.data.dataset), task)
    in_channels = 1 if projection else 2 * cfg.data.context_slices + 1  # per view for X-ray -> CT
    modules, divisible = build_gan(cfg, in_channels, device)
    _check_patch_size(cfg, divisible, modules.discriminator)
    if projection:
        samples, val_cases = load_lift_data(cfg, dataset, runtime)
        prep = replace(make_preprocessing(cfg, divisible), target_range=cfg.data.source_window)
        strategy = lift_strategy(cfg)

        def run_validation(generator: torch.nn.Module) -> ValidationResult:
            return validate_lift(generator, val_cases, prep, strategy, device, cfg.train.bf16)
    else:
        prep, samples, val_volumes = _load_data(cfg, dataset, divisible, runtime)

        def run_validation(generator: torch.nn.Module) -> ValidationResult:
            return validate(generator, val_volumes, prep, inference_strategy(cfg), device, cfg.train.bf16)

    sampler = ResumableBatchSampler(len(samples), cfg.data.batch_size, cfg.train.seed, runtime.rank, runtime.world_size)
    loader = DataLoader(
        samples,
        batch_sampler=sampler,
        num_workers=cfg.train.num_workers,
        generator=torch.Generator(),  # reseeded per epoch by the trainer; never draws from the global RNG
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(cfg.train.epochs, cfg.train.decay_epochs))
        for opt in (modules.optimizer_g, modules.optimizer_d)
    ]
    trainer = Trainer(
        cfg=cfg,
        runtime=runtime,
        plain=modules,
        trained=_wrap(modules, runtime, cfg),
        schedulers=schedulers,
        sampler=sampler,
        loader=loader,
        tracker=tracker or NullTracker(),
        checkpoint=out_dir / CHECKPOINT_NAME,
        static_payload=_static_payload(cfg, prep, in_channels, task, dataset),
        adversarial=_adversarial(cfg),
        validate=run_validation,
        step_options=step_options(cfg, prep),
    )
    if runtime.distributed and cfg.train.seed is not None:
        seed_everything(cfg.train.seed + 7919 * runtime.rank)  # distinct dropout/flip streams per rank
    if resume_from is not None:
        trainer.restore(resume_from)
    if runtime.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    trainer.progress.run_id = _start_tracking(cfg, trainer, dataset, resume_from)
    trainer.replay_backlog()
    result: ValidationResult | None = None
    status = "FAILED"
    try:
        with StopRequest() as stop:
            result = trainer.run(stop)
        if runtime.is_main:
            _log_final_artifacts(cfg, trainer.tracker, trainer.checkpoint, result)
        status = "FINISHED"
    except KeyboardInterrupt:  # TrainingInterrupted included: the checkpoint is on disk
        status = "KILLED"
        raise
    finally:
        trainer.tracker.end(status)
    if result is None and runtime.is_main:  # resumed a run that had already finished all epochs
        result = trainer.validate(modules.generator)
    return TrainResult(
        run_id=trainer.progress.run_id,
        checkpoint=trainer.checkpoint,
        metrics=result.metrics if result else {},
        montage=out_dir / "val_montage.png" if result is not None and result.montage is not None else None,
        per_case=result.per_case if result else {},
        rank=runtime.rank,
        model=out_dir / INFERENCE_NAME if runtime.is_main else None,
    )


def _read_ct_source(cfg: ExperimentConfig, runtime: Runtime) -> Any:
    """X-ray -> CT's CT cases; rank 0 first, so a CT folder's files are hashed once (digest memo)."""
    if runtime.is_main:
        source = read_lift_source(cfg)
    runtime.barrier()
    return source if runtime.is_main else read_lift_source(cfg)


def _wrap(modules: GanModules, runtime: Runtime, cfg: ExperimentConfig) -> GanModules:
    """The networks as the training step calls them (DDP, SyncBatchNorm, channels-last, compiled)."""
    flags = (cfg.train.channels_last, cfg.train.compile)
    generator, modules.generator = prepare_module(modules.generator, runtime, *flags)
    discriminator, modules.discriminator = prepare_module(modules.discriminator, runtime, *flags)
    judge = torch.compile(modules.discriminator) if cfg.train.compile else modules.discriminator
    return GanModules(generator, discriminator, modules.optimizer_g, modules.optimizer_d, judge)


def _static_payload(
    cfg: ExperimentConfig, prep: Preprocessing, in_channels: int, task: Task, dataset: Any
) -> dict[str, Any]:
    """Checkpoint content that does not change during the run."""
    strategy = lift_strategy(cfg) if task.geometry == "projection" else inference_strategy(cfg)
    fingerprint = _fingerprint_hash(dataset.root)
    return {
        "config": cfg.model_dump(mode="json"),
        "preprocessing": prep.to_dict(),
        "generator_spec": generator_spec(cfg, in_channels),
        "inference": strategy_to_dict(strategy),
        "source_modality": task.source_modality,
        "target_modality": task.target_modality,
        "dataset_fingerprint": fingerprint,
        "training_data": _training_data(dataset, fingerprint),
        "medxlate_version": __version__,
    }


def _training_data(dataset: Any, fingerprint: str | None) -> dict[str, Any]:
    """What the model learnt from, without identifiers: a SHA-256 of the data and the cases per split."""
    if fingerprint:
        digest, digest_of = fingerprint, "the dataset's fingerprint.json"
    elif isinstance(dataset, CtSource):
        digest, digest_of = dataset.digest, "the CT files"
    else:
        digest, digest_of = _index_hash(dataset.root), "the dataset's dataset.json"
    cases = {split: len(dataset.split(split)) for split in ("train", "val")}
    return {"digest": digest, "digest_of": digest_of, "cases": cases}


def _start_tracking(cfg: ExperimentConfig, trainer: Trainer, dataset: Any, resume_from: Path | None) -> str | None:
    """Open (or continue) the tracked run; a resumed run keeps its name and records where it resumed from."""
    from medxlate.tracking.run_info import default_run_name, run_tags

    fingerprint = trainer.static_payload.get("dataset_fingerprint")
    task = f"{trainer.static_payload['source_modality']}->{trainer.static_payload['target_modality']}"
    tags = run_tags(task, fingerprint, trainer.runtime.world_size)
    if resume_from is not None:
        tags["medxlate.resumed_at_step"] = str(trainer.progress.step)
    run_name = cfg.tracking.run_name or default_run_name(cfg.name)
    run_id = trainer.tracker.start(
        cfg.experiment_name, run_name, flatten_config(cfg), tags=tags, resume_run_id=trainer.progress.run_id
    )
    if run_id and run_id != trainer.progress.run_id:  # a new run: record its training data
        digest = trainer.static_payload["training_data"]["digest"]
        trainer.tracker.log_dataset(dataset.name, digest, str(dataset.root.resolve()), "training")
    return run_id


def _index_hash(root: Path) -> str:
    """SHA-256 of the dataset's index (``dataset.json``): its digest when it has no fingerprint."""
    import hashlib

    from medxlate.data.dataset import DATASET_FILE

    return hashlib.sha256((root / DATASET_FILE).read_bytes()).hexdigest()


def _load_data(
    cfg: ExperimentConfig, dataset: Any, divisible: int, runtime: Runtime
) -> tuple[Preprocessing, SliceSampler | PatchSampler, LazyVolumes]:
    """The training sampler and the validation volumes over the on-disk cache (built if needed), and
    the preprocessing with its target reference range (the mean of the training volumes' own ranges:
    percentile values for an MR target, the window for a CT target; used to map outputs back to
    target units) and the training domain (spacing, source intensities, field of view; used at
    inference), read from the cache one volume at a time."""
    train_cases, val_cases = dataset.split("train"), dataset.split("val")
    if not train_cases or not val_cases:
        raise InputDataError(
            f"{dataset.root}: need at least one 'train' and one 'val' case, found "
            f"{len(train_cases)} train and {len(val_cases)} val"
        )
    prep = make_preprocessing(cfg, divisible)
    data = cfg.data
    cache_dir = data.cache_dir if data.cache_dir is not None else Path(cfg.train.output_dir) / "data_cache"
    cases = [*train_cases, *val_cases]
    # One writer: rank 0 builds (or validates) the cache while the others wait, then they open the
    # warm cache. Concurrent builders would race on the same case folders.
    if runtime.is_main:
        cached = build_cache(dataset, cases, prep, cache_dir)
    runtime.barrier()
    if not runtime.is_main:
        cached = build_cache(dataset, cases, prep, cache_dir)
    train_cached, val_cached = cached[: len(train_cases)], cached[len(train_cases) :]
    reference = [float(np.mean([case.target_range[i] for case in train_cached])) for i in (0, 1)]
    domain = TrainingDomain.from_volumes(MappedSources(train_cached), prep.source_unit_range)
    prep = replace(prep, target_range=(reference[0], reference[1]), domain=domain)
    reader = VolumeReader(train_cached, data.cache_volumes)
    seed = cfg.train.seed
    samples: SliceSampler | PatchSampler
    if data.spatial_dims == 2:
        samples = SliceSampler(train_cached, reader, data.context_slices, divisible, data.flip_prob, seed)
    else:
        assert data.patch_size is not None  # guaranteed by DataConfig
        samples = PatchSampler(
            train_cached, reader, data.patch_size, data.patches_per_volume, data.foreground_prob, data.flip_prob, seed
        )
    return prep, samples, LazyVolumes(val_cached)


def _check_patch_size(cfg: ExperimentConfig, divisible: int, discriminator: torch.nn.Module) -> None:
    """3D patches must suit the generator's stride and the discriminator's receptive field."""
    patch = cfg.data.patch_size
    if cfg.data.spatial_dims != 3 or patch is None:
        return
    if any(size % divisible for size in patch):
        raise ConfigError(
            f"data.patch_size: {list(patch)} has a size that is not a multiple of {divisible}, the total "
            f"stride of generator '{cfg.model.generator}' with {cfg.model.generator_params}"
        )
    minimum = int(getattr(discriminator, "min_input_size", 1))
    if min(patch) < minimum:
        raise ConfigError(
            f"data.patch_size: {list(patch)} is smaller than {minimum}, the smallest input discriminator "
            f"'{cfg.model.discriminator}' with {cfg.model.discriminator_params} accepts"
        )


def _adversarial(cfg: ExperimentConfig) -> Any:
    from medxlate.models import get_adversarial_loss

    return get_adversarial_loss(cfg.loss.adversarial)


def _fingerprint_hash(root: Path) -> str | None:
    """Hash of the dataset's fingerprint.json, if the dataset has a current one."""
    from medxlate.data import fingerprint_hash, load_fingerprint

    fingerprint = load_fingerprint(root)
    return fingerprint_hash(fingerprint) if fingerprint else None


def _log_final_artifacts(cfg: ExperimentConfig, tracker: Tracker, checkpoint: Path, result: Any) -> None:
    """Montage PNG, the slim inference checkpoint (``model/``), the full resumable one (``checkpoint/``,
    only with ``tracking.log_checkpoint``) and the resolved config into the tracker (rank 0)."""
    out_dir = checkpoint.parent
    montage_path = _write_montage(result, out_dir)
    tracker.log_artifact(write_inference_checkpoint(checkpoint), "model")
    if cfg.tracking.log_checkpoint:
        tracker.log_artifact(checkpoint, "checkpoint")
    if montage_path is not None:
        tracker.log_artifact(montage_path, "images")
    config_path = out_dir / "config.yaml"
    _write_config(cfg, config_path)
    tracker.log_artifact(config_path, "config")


def write_inference_checkpoint(checkpoint: Path) -> Path:
    """Write the slim inference checkpoint of ``checkpoint`` beside it (``model.pt``).

    Returns:
        The file written.
    """
    from medxlate.checkpoint import inference_checkpoint, load_checkpoint, save_checkpoint

    return save_checkpoint(inference_checkpoint(load_checkpoint(checkpoint)), checkpoint.parent / INFERENCE_NAME)


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
