"""The epoch/step driver: optimisation steps, checkpoints every N steps, stop signals, rank-0 logging.

:func:`medxlate.training.loop.fit` builds data, networks and the tracker, then hands them to a
:class:`Trainer`. The trainer owns the order that makes runs crash-safe: after a step, a checkpoint
(when due) is written atomically *before* the tracker is asked to send the records it covers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from medxlate.checkpoint import load_checkpoint, save_checkpoint
from medxlate.config import ExperimentConfig
from medxlate.metrics.summary import split_reference_constants
from medxlate.progress import step_bar
from medxlate.tracking.base import as_params
from medxlate.training.resume import check_compatible, rng_states, set_rng_states
from medxlate.training.runtime import Runtime
from medxlate.training.sampler import ResumableBatchSampler
from medxlate.training.signals import StopRequest, TrainingInterrupted
from medxlate.training.steps import GanModules, train_step

logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where training stands: completed epochs, batches consumed in the current epoch, global step."""

    epoch: int = 0
    position: int = 0
    step: int = 0
    run_id: str | None = None


@dataclass
class Trainer:
    """Runs the epochs of one training run on one rank.

    Attributes:
        cfg: The experiment config.
        runtime: Device and distributed state of this process.
        plain: Networks and optimisers as checkpointed (no DDP/compile wrappers).
        trained: The same networks as called in the training step (DDP and/or compiled).
        schedulers: Learning-rate schedulers (stepped at each epoch end).
        sampler: The resumable batch sampler behind ``loader``.
        loader: Training batches.
        tracker: Where rank 0 logs (other ranks get a NullTracker).
        checkpoint: The resume checkpoint file (written by rank 0).
        static_payload: Checkpoint content fixed for the run (config, preprocessing, spec, ...).
        adversarial: The adversarial loss object.
        validate: ``validate(generator) -> ValidationResult`` on rank 0.
        step_options: Further keyword arguments of :func:`~medxlate.training.steps.train_step`
            (extra loss terms, an unconditional discriminator, the projection context).
    """

    cfg: ExperimentConfig
    runtime: Runtime
    plain: GanModules
    trained: GanModules
    schedulers: list[Any]
    sampler: ResumableBatchSampler
    loader: DataLoader
    tracker: Any
    checkpoint: Path
    static_payload: dict[str, Any]
    adversarial: Any
    validate: Callable[[torch.nn.Module], Any]
    step_options: dict[str, Any] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)
    last_metrics: dict[str, float] = field(default_factory=dict)
    backlog: list[Any] = field(default_factory=list)

    def replay_backlog(self) -> None:
        """Send again the metrics the resumed checkpoint recorded as possibly undelivered."""
        resend = getattr(self.tracker, "resend", None)
        if resend is not None and self.backlog:
            resend(self.backlog)
            self.tracker.commit()
        self.backlog = []

    # ------------------------------------------------------------------ resume
    def restore(self, path: Path) -> None:
        """Load weights, optimisers, schedules, sampler position and this rank's RNG states.

        Raises:
            CheckpointError: if the checkpoint is unreadable or made for a different setup (the
                differing config keys and parameter names are listed).
        """
        content = load_checkpoint(path)
        plain = self.plain
        check_compatible(
            content,
            path,
            self.cfg.model_dump(mode="json"),
            {"generator": plain.generator, "discriminator": plain.discriminator},
        )
        plain.generator.load_state_dict(content["generator"])
        plain.discriminator.load_state_dict(content["discriminator"])
        plain.optimizer_g.load_state_dict(content["optimizer_g"])
        plain.optimizer_d.load_state_dict(content["optimizer_d"])
        for scheduler, state in zip(self.schedulers, content["schedulers"], strict=True):
            scheduler.load_state_dict(state)
        position = int(content.get("position", 0))
        self.progress = Progress(int(content["epoch"]), position, int(content["step"]), content.get("mlflow_run_id"))
        self.backlog = list(content.get("tracking_backlog", []))
        if "sampler" in content:
            self.sampler.load_state_dict({**content["sampler"], "epoch": self.progress.epoch, "position": position})
        states = content.get("rng_states") or []
        if len(states) == self.runtime.world_size:
            set_rng_states(states[self.runtime.rank])
        else:  # another number of processes: reseed deterministically instead
            logger.warning(
                "resume: checkpoint from %d process(es), now %d; RNGs reseeded", len(states), self.runtime.world_size
            )
            torch.manual_seed(self.cfg.train.seed + 7919 * self.runtime.rank + self.progress.step)
        progress = self.progress
        logger.info("resumed from %s: epoch %d, batch %d, step %d", path, progress.epoch + 1, position, progress.step)

    # ------------------------------------------------------------- checkpoint
    def save(self, epoch: int, position: int) -> None:
        """Write the resume checkpoint (rank 0; every rank contributes its RNG states) and commit logs."""
        states = [rng_states()]
        if self.runtime.distributed:
            gathered: list[Any] = [None] * self.runtime.world_size
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        if not self.runtime.is_main:
            return
        plain = self.plain
        payload = {
            **self.static_payload,
            "generator": plain.generator.state_dict(),
            "discriminator": plain.discriminator.state_dict(),
            "optimizer_g": plain.optimizer_g.state_dict(),
            "optimizer_d": plain.optimizer_d.state_dict(),
            "schedulers": [s.state_dict() for s in self.schedulers],
            "sampler": self.sampler.state_dict(position),
            "rng_states": states,
            "epoch": epoch,
            "position": position,
            "step": self.progress.step,
            "world_size": self.runtime.world_size,
            "metrics": dict(self.last_metrics),
            "mlflow_run_id": self.progress.run_id,
            "tracking_backlog": [list(r) for r in getattr(self.tracker, "undelivered", list)()],
        }
        save_checkpoint(payload, self.checkpoint)
        commit = getattr(self.tracker, "commit", None)
        if commit is not None:
            commit()

    # ------------------------------------------------------------------ epochs
    def run(self, stop: StopRequest) -> Any:
        """Train from ``self.progress`` to the last epoch.

        Returns:
            The last epoch's validation result (rank 0; ``None`` elsewhere or if nothing was left).

        Raises:
            TrainingInterrupted: after a stop signal, once the checkpoint is written.
        """
        result = None
        for epoch in range(self.progress.epoch, self.cfg.train.epochs):
            self.sampler.set_epoch(epoch, self.progress.position)
            self.loader.dataset.set_epoch(epoch)  # per-item random draws: a function of (seed, epoch, index)
            if self.loader.generator is not None:  # worker seeds: a function of (seed, epoch) alone
                self.loader.generator.manual_seed(self.cfg.train.seed * 1_000_003 + epoch)
            self._train_epoch(epoch, stop)
            result = self._end_of_epoch(epoch)
            self.progress.epoch, self.progress.position = epoch + 1, 0
            if self.runtime.any_flag(stop.requested):
                raise TrainingInterrupted(stop.signum or 15, self.checkpoint if self.runtime.is_main else None)
        return result

    def _train_epoch(self, epoch: int, stop: StopRequest) -> None:
        cfg, runtime, progress = self.cfg, self.runtime, self.progress
        self.trained.generator.train()
        self.trained.discriminator.train()
        limit = min(cfg.train.max_steps_per_epoch or len(self.sampler), len(self.sampler))
        bar = step_bar(  # off a terminal silent: _end_of_epoch logs one line per epoch
            limit,
            desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            initial=min(progress.position, limit),
            enabled=runtime.is_main,
        )
        every = cfg.train.checkpoint_every
        non_blocking = runtime.device.type == "cuda"
        memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        for batch in self.loader:
            if progress.position >= limit:
                break
            source = batch["source"].to(runtime.device, non_blocking=non_blocking)
            target = batch["target"].to(runtime.device, non_blocking=non_blocking)
            if source.dim() == 4:
                source, target = (t.contiguous(memory_format=memory_format) for t in (source, target))
            views = batch.get("views_clean")  # X-ray -> CT: clean views of the real CT
            losses = train_step(
                self.trained,
                source,
                target,
                self.adversarial,
                cfg.loss.lambda_l1,
                cfg.train.bf16,
                cfg.loss.lambda_adv,
                reference_views=None if views is None else views.to(runtime.device, non_blocking=non_blocking),
                **self.step_options,
            )
            progress.position += 1
            progress.step += 1
            bar.update(1)
            if progress.step % cfg.train.log_every == 0 or progress.position == 1:
                self._log_losses(losses, bar)
            due = bool(every and progress.step % every == 0 and progress.position < limit)
            # Ranks agree on stopping through an all-reduce (a host sync), so under torchrun the flag
            # is checked only on logged and checkpoint steps; one process checks it every step.
            check = not runtime.distributed or due or progress.step % cfg.train.log_every == 0
            if check and runtime.any_flag(stop.requested):
                self.save(epoch, progress.position)
                bar.close()
                raise TrainingInterrupted(stop.signum or 15, self.checkpoint if runtime.is_main else None)
            if due:
                self.save(epoch, progress.position)
        bar.close()

    def _log_losses(self, losses: dict[str, torch.Tensor], bar: Any) -> None:
        """Mean losses over ranks, converted to numbers only here (one host sync per logged step)."""
        names = list(losses)
        values = self.runtime.mean(torch.stack([losses[name].float() for name in names])).tolist()
        logged = {f"train/{name}": value for name, value in zip(names, values, strict=True)}
        if self.runtime.is_main:
            self.tracker.log_metrics(logged, step=self.progress.step)
            bar.set_postfix({n: f"{logged[f'train/loss_{n}']:.3f}" for n in ("d", "g") if f"train/loss_{n}" in logged})

    def _end_of_epoch(self, epoch: int) -> Any:
        """Step the schedules, validate and log (rank 0), then checkpoint and commit the logs."""
        for scheduler in self.schedulers:
            with warnings.catch_warnings():
                if self.cfg.loss.lambda_adv == 0:  # the discriminator's optimiser never steps; its schedule still does
                    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                scheduler.step()
        result = None
        if self.runtime.is_main:
            result = self.validate(self.plain.generator)
            self.last_metrics = dict(result.metrics)
            scores, constants = split_reference_constants(result.metrics)  # data_range: a param, not a curve
            self.tracker.log_metrics({f"val/{k}": v for k, v in scores.items()}, step=epoch + 1)
            if constants:
                self.tracker.log_params(as_params(constants, "val/"))
            self.tracker.log_metrics({"lr": self.schedulers[0].get_last_lr()[0], "epoch": epoch + 1}, step=epoch + 1)
            if self.cfg.tracking.log_images and result.montage is not None:
                self.tracker.log_image(result.montage, key="val_montage", step=epoch + 1)
        self.runtime.barrier()
        self.progress.position = 0
        self.save(epoch + 1, 0)
        if self.runtime.is_main:
            logger.info("epoch %d/%d: %s", epoch + 1, self.cfg.train.epochs, _summary(self.last_metrics))
        return result


def _summary(values: dict[str, float]) -> str:
    keys = ("ssim_body", "psnr_body", "mae_body")
    return ", ".join(f"{k}={values[k]:.4g}" for k in keys if k in values)
