"""X-ray -> CT training throughput: the full GAN step, the step without its projection term, the DRR data side.

Settings (read from the configs, so the benchmark follows them):

* ``demo``: ``configs/xray2ct.yaml`` with the overrides of ``pipelines/xray2ct.yaml`` (64³ grid,
  ``x2ct`` ``num_downs=4, ngf=16``, PatchGAN ``ndf=16, n_layers=2`` today);
* ``default``: ``configs/xray2ct.yaml`` as it is (128³ grid, ``num_downs=5, ngf=32``, PatchGAN
  ``ndf=32, n_layers=3``, instance norm, lsgan x 0.1 + mse x 10 + projection x 10, batch 2).

Each setting runs single-view (``xray.views: [PA]``) and biplanar (``[PA, LL]``). Per setting and view
count, in one run:

* ``step``: :func:`medxlate.training.steps.train_step` as the training loop calls it, with the
  networks, optimisers, adversarial loss and step options built by the training code itself
  (:func:`~medxlate.training.setup.build_gan`, :func:`~medxlate.training.lift.step_options`: an
  unconditional discriminator, the config's weighted terms, the projection context), bf16 autocast on
  CUDA when ``train.bf16`` (as training does), the batch copied host -> device inside each step (as
  the loop does). Steps/s and samples/s (= batch x steps/s); median of 3 timed blocks of ``--steps``
  steps after ``--warmup`` steps, synchronised on CUDA; on CUDA also the peak memory allocated
  during one step;
* ``no projection``: the same step with the ``projection`` weight set to 0 (the term is then not
  computed), its own networks, its blocks interleaved with the full step's (so a load change on a
  shared machine hits both); ``proj share`` = 1 - step time without / with it;
* ``data``: :class:`medxlate.data.drr.DrrTrainingSet` ``__getitem__`` as training builds it
  (:func:`~medxlate.training.lift.drr_training_set`: pose jitter -> resampling onto the model grid ->
  DRR rendering of every view -> view augmentation), on the CPU as the DataLoader runs it, from a
  synthetic chest phantom cached on the model grid as ``.npy`` files in a temporary folder; items/s =
  1 / median seconds per item after one warm-up item. ``data/step`` = data items/s over the step's
  samples/s: below 1, one loader process cannot feed the step (``train.num_workers`` helps).

The batch the step trains on is the first ``data.batch_size`` items of that training set.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.xray_train_speed --device cpu     # results/xray_train_speed_cpu.json
    .venv/bin/python -m benchmarks.xray_train_speed --device cuda    # results/xray_train_speed_cuda.json
    .venv/bin/python -m benchmarks.xray_train_speed --tiny           # seconds: checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from torch.utils.data import default_collate

from benchmarks.drr_speed import phantom_hu
from medxlate.config import ExperimentConfig, load_config
from medxlate.data.drr import DrrTrainingSet, GridCT

ROOT = Path(__file__).resolve().parents[1]
VIEWS = {"single": ["PA"], "biplanar": ["PA", "LL"]}
TINY = {"xray.size": 16, "xray.fov_mm": 48.0}  # with toy networks, see tiny_overrides()


@dataclass(frozen=True)
class Setting:
    """One benchmarked training setting: its config and the one without the projection term."""

    name: str
    views: str
    cfg: ExperimentConfig
    cfg_no_projection: ExperimentConfig


def tiny_overrides(cfg: ExperimentConfig) -> dict[str, Any]:
    """Toy grid and networks (seconds on a CPU); views, losses and norms stay the config's."""
    return {
        **TINY,
        "model.generator_params": {**cfg.model.generator_params, "num_downs": 2, "ngf": 4},
        "model.discriminator_params": {**cfg.model.discriminator_params, "ndf": 4, "n_layers": 1},
    }


def settings(
    config: Path, pipeline: Path, names: Sequence[str], views: Sequence[str], tiny: bool = False
) -> list[Setting]:
    """The benchmarked settings, loaded from the experiment config and the pipeline's overrides.

    Raises:
        ConfigError: if a config is invalid.
    """
    from medxlate.pipeline import load_pipeline

    found = []
    for name in names:
        base: dict[str, Any] = {}
        path = config
        if name == "demo":
            recipe = load_pipeline(pipeline)
            path = recipe.config if recipe.config.is_absolute() else ROOT / recipe.config
            base = dict(recipe.overrides)
        for view in views:
            overrides = {**base, "xray.views": VIEWS[view]}
            cfg = load_config(path, overrides)
            if tiny:
                overrides.update(tiny_overrides(cfg))
                cfg = load_config(path, overrides)
            without = {**overrides, "loss.terms": {**cfg.loss.terms, "projection": 0.0}}
            found.append(Setting(name, view, cfg, load_config(path, without)))
    return found


def phantom_grid_ct(cfg: ExperimentConfig, folder: Path) -> GridCT:
    """A chest phantom resampled onto the model grid and cached as ``.npy`` (as the training cache does)."""
    from medxlate.xray.drr_data import to_model_grid

    xray = cfg.xray
    assert xray is not None
    hu, affine = phantom_hu(xray.size, xray.fov_mm / xray.size)
    grid, record = to_model_grid(MetaTensor(hu[None], affine=affine), xray.size, xray.fov_mm, xray.min_coverage)
    folder.mkdir(parents=True, exist_ok=True)
    ct = grid.as_tensor()[0].numpy()
    np.save(folder / "ct.npy", ct)
    np.save(folder / "mask.npy", (ct > -500).astype(np.uint8))
    grid_affine = torch.as_tensor(grid.affine, dtype=torch.float64)
    return GridCT("phantom", folder / "ct.npy", folder / "mask.npy", grid_affine, record)


def time_items(samples: DrrTrainingSet, count: int) -> float:
    """Median seconds of ``samples[i]`` over ``count`` items (after one warm-up item)."""
    samples[0]
    seconds = []
    for index in range(1, count + 1):
        start = time.perf_counter()
        samples[index % len(samples)]
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(
    cfg: ExperimentConfig, batch: dict[str, torch.Tensor], device: torch.device
) -> Callable[[], dict[str, torch.Tensor]]:
    """One training step on ``batch`` as the training loop runs it, with networks built by the training code."""
    from medxlate.models import get_adversarial_loss
    from medxlate.training.lift import step_options
    from medxlate.training.loop import make_preprocessing
    from medxlate.training.setup import build_gan
    from medxlate.training.steps import train_step

    torch.manual_seed(cfg.train.seed)
    modules, divisible = build_gan(cfg, 1, device)  # one input channel per view, as training builds it
    options = step_options(cfg, make_preprocessing(cfg, divisible))
    adversarial = get_adversarial_loss(cfg.loss.adversarial)
    non_blocking = device.type == "cuda"

    def step() -> dict[str, torch.Tensor]:
        source, target, views = (
            batch[k].to(device, non_blocking=non_blocking) for k in ("source", "target", "views_clean")
        )
        return train_step(
            modules,
            source,
            target,
            adversarial,
            cfg.loss.lambda_l1,
            cfg.train.bf16,
            cfg.loss.lambda_adv,
            reference_views=views,
            **options,
        )

    return step


def time_steps(
    steps_by_name: dict[str, Callable[[], dict[str, torch.Tensor]]], device: torch.device, steps: int, warmup: int
) -> dict[str, tuple[float, list[str]]]:
    """Median seconds per step of each named step (3 blocks of ``steps``, interleaved) and its loss parts.

    Raises:
        RuntimeError: if a loss is not finite.
    """
    blocks: dict[str, list[float]] = {name: [] for name in steps_by_name}
    losses: dict[str, dict[str, torch.Tensor]] = {}
    for step in steps_by_name.values():
        for _ in range(warmup):
            step()
    for _ in range(3):
        for name, step in steps_by_name.items():
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                losses[name] = step()
            _sync(device)
            blocks[name].append((time.perf_counter() - start) / steps)
    for name, values in losses.items():
        bad = [part for part, value in values.items() if not bool(torch.isfinite(value))]
        if bad:
            raise RuntimeError(f"non-finite losses {bad} in the '{name}' step")
    return {name: (statistics.median(blocks[name]), sorted(losses[name])) for name in steps_by_name}


def measure(setting: Setting, device: torch.device, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One row: the step with and without the projection term, and the data side."""
    from medxlate.training.lift import drr_training_set

    cfg = setting.cfg
    samples = drr_training_set(cfg, [phantom_grid_ct(cfg, folder / f"{setting.name}_{setting.views}")])
    data_s = time_items(samples, args.items)
    batch = default_collate([samples[i % len(samples)] for i in range(cfg.data.batch_size)])
    if device.type == "cuda":
        batch = {k: v.pin_memory() for k, v in batch.items()}
    steps = {
        "step": make_step(cfg, batch, device),
        "no_projection": make_step(setting.cfg_no_projection, batch, device),
    }
    timed = time_steps(steps, device, args.steps, args.warmup)
    peak = None
    if device.type == "cuda":  # one more full step, alone: its peak (both steps' networks are resident)
        torch.cuda.reset_peak_memory_stats(device)
        steps["step"]()
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    (step_s, parts), (plain_s, plain_parts) = timed["step"], timed["no_projection"]
    xray = cfg.xray
    assert xray is not None
    samples_per_s = cfg.data.batch_size / step_s
    return {
        "setting": setting.name,
        "views": list(xray.views),
        "size": xray.size,
        "batch": cfg.data.batch_size,
        "generator": {"name": cfg.model.generator, **cfg.model.generator_params},
        "discriminator": {"name": cfg.model.discriminator, **cfg.model.discriminator_params},
        "loss": {"adversarial": cfg.loss.adversarial, "lambda_adv": cfg.loss.lambda_adv, **cfg.loss.terms},
        "bf16": bool(cfg.train.bf16 and device.type == "cuda"),
        "step_ms": 1000 * step_s,
        "steps_per_s": 1 / step_s,
        "samples_per_s": samples_per_s,
        "loss_parts": parts,
        "no_projection_step_ms": 1000 * plain_s,
        "no_projection_samples_per_s": cfg.data.batch_size / plain_s,
        "no_projection_loss_parts": plain_parts,
        "projection_share": 1 - plain_s / step_s,
        "data_ms_per_item": 1000 * data_s,
        "data_items_per_s": 1 / data_s,
        "data_vs_step": (1 / data_s) / samples_per_s,
        "peak_memory_gib": peak,
    }


HEADER = (
    f"{'setting':8s} {'views':9s} {'grid':>5s} {'batch':>5s} | {'step ms':>9s} {'steps/s':>8s} {'samples/s':>9s} | "
    f"{'no-proj ms':>10s} {'samples/s':>9s} {'proj share':>10s} | {'data ms':>8s} {'items/s':>8s} {'data/step':>9s}"
)


def format_row(row: dict[str, Any]) -> str:
    """One printed table line."""
    return (
        f"{row['setting']:8s} {'+'.join(row['views']):9s} {row['size']:>4d}³ {row['batch']:5d} | "
        f"{row['step_ms']:9.1f} {row['steps_per_s']:8.2f} {row['samples_per_s']:9.2f} | "
        f"{row['no_projection_step_ms']:10.1f} {row['no_projection_samples_per_s']:9.2f} "
        f"{100 * row['projection_share']:9.1f}% | "
        f"{row['data_ms_per_item']:8.1f} {row['data_items_per_s']:8.2f} {row['data_vs_step']:9.2f}"
    )


def _write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every setting; writes the JSON after each row (kept if a time limit stops the run)."""
    from medxlate.training.runtime import apply_speed_settings

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    found = settings(args.config, args.pipeline, args.settings, args.views, args.tiny)
    report: dict[str, Any] = {
        "rows": [],
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "tiny": args.tiny,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="xray_train_speed_") as folder:
        for setting in found:
            apply_speed_settings(device, setting.cfg.train.cudnn_benchmark)
            row = measure(setting, device, args, Path(folder))
            report["rows"].append(row)
            print(format_row(row), flush=True)
            _write(args.out, {**report, "partial": True})
    report["load_average_end"] = os.getloadavg()
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--settings", nargs="+", choices=["demo", "default"], default=["demo", "default"])
    parser.add_argument("--views", nargs="+", choices=list(VIEWS), default=list(VIEWS))
    parser.add_argument("--config", type=Path, default=ROOT / "configs/xray2ct.yaml")
    parser.add_argument("--pipeline", type=Path, default=ROOT / "pipelines/xray2ct.yaml", help="the demo's overrides")
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per timed block (3 blocks; default 10 CUDA, 1 CPU)"
    )
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CUDA, 1 CPU)")
    parser.add_argument("--items", type=int, default=5, help="timed DrrTrainingSet items (after one warm-up item)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--tiny", action="store_true", help="toy grid and networks: a quick check, not a measurement")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default results/xray_train_speed_<device>.json)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    cuda = args.device == "cuda"
    args.steps = args.steps or (10 if cuda else 1)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    suffix = "_tiny" if args.tiny else ""
    args.out = args.out or ROOT / "benchmarks" / "results" / f"xray_train_speed_{args.device}{suffix}.json"
    _write(args.out, run(args))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
