"""Training speed: plain fp32 eager vs the optimised path, in one run, on the same inputs.

Cases:

* ``2d``: the paper's setting (Isola et al. 2017): ``unet_256`` (``unet``, ``num_downs=8, ngf=64``,
  batch norm) + 70x70 PatchGAN (``n_layers=3, ndf=64``), 256² slices, 1 channel in and out,
  lsgan + 100 x L1; images/s = batch x steps / s.
* ``3d``: the same networks with ``spatial_dims=3`` on 128³ patches (``num_downs=7, ngf=32``,
  PatchGAN ``ndf=32``; batch ``--batch-3d``); patches/s.

Paths (the real :func:`medxlate.training.steps.train_step`, Adam as in training):

* ``fp32_eager``: float32, no autocast, TF32 off, NCHW, no ``torch.compile``, unfused Adam;
* ``optimised``: bf16 autocast (CUDA; no GradScaler), TF32 on, cuDNN autotuning, channels-last,
  fused Adam (CUDA), ``torch.compile`` of G and D with ``--compile``. On CPU, autocast is off
  (medxlate uses bf16 only on CUDA), so the CPU "optimised" path differs by memory format only.

Model FLOPs utilisation: FLOPs of one training step counted by ``torch.utils.flop_counter`` (forward
and backward of G and D, at the batch used) x steps/s / the device's peak. Peaks used: the dense
bf16 tensor-core peak for ``optimised`` and the fp32 (non tensor-core) peak for ``fp32_eager``,
from a table of known GPUs (H100 SXM / H200: 989 / 67 TFLOP/s; A100: 312 / 19.5) or ``--peak-tflops``;
on CPU no peak is assumed and MFU is not reported.

MLflow overhead per step: the training loop's main-thread cost of logging 5 scalars per step through
:class:`~medxlate.tracking.resilient.ResilientTracker` (commit every 10 steps, delivery in the
background) and, for comparison, a synchronous ``MlflowTracker.flush`` every step, against a
temporary SQLite store (skipped if mlflow is not installed).

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.train_speed                      # CUDA when available
    .venv/bin/python -m benchmarks.train_speed --tiny --device cpu  # seconds: checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from medxlate.models import build_discriminator, build_generator, get_adversarial_loss
from medxlate.training.steps import GanModules, train_step

PEAK_TFLOPS = {"H100": (989.0, 67.0), "H200": (989.0, 67.0), "A100": (312.0, 19.5)}  # (bf16 dense, fp32)


@dataclass(frozen=True)
class Case:
    """One network/shape setting."""

    name: str
    spatial_dims: int
    size: int
    batch: int
    generator: dict[str, Any]
    discriminator: dict[str, Any]


@dataclass(frozen=True)
class Row:
    """Result of one (case, path)."""

    case: str
    path: str
    device: str
    batch: int
    size: int
    items_per_s: float
    ms_per_step: float
    tflop_per_step: float
    mfu: float | None
    speedup_vs_fp32_eager: float | None = None


def cases(tiny: bool, batch_2d: int, batch_3d: int, with_3d: bool) -> list[Case]:
    """The benchmark cases (``tiny``: small networks and sizes that run in seconds on a CPU)."""
    if tiny:
        found = [Case("2d", 2, 32, 2, {"num_downs": 5, "ngf": 8}, {"ndf": 8, "n_layers": 3})]
        if with_3d:
            found.append(Case("3d", 3, 16, 1, {"num_downs": 4, "ngf": 4}, {"ndf": 4, "n_layers": 2}))
        return found
    found = [Case("2d", 2, 256, batch_2d, {"num_downs": 8, "ngf": 64}, {"ndf": 64, "n_layers": 3})]
    if with_3d:
        found.append(Case("3d", 3, 128, batch_3d, {"num_downs": 7, "ngf": 32}, {"ndf": 32, "n_layers": 3}))
    return found


def _modules(case: Case, device: torch.device, optimised: bool) -> GanModules:
    torch.manual_seed(0)
    generator = build_generator("unet", case.spatial_dims, 1, 1, **case.generator).to(device)
    discriminator = build_discriminator("patchgan", case.spatial_dims, 2, **case.discriminator).to(device)
    fused = optimised and device.type == "cuda"
    if optimised:
        fmt = torch.channels_last_3d if case.spatial_dims == 3 else torch.channels_last
        generator, discriminator = generator.to(memory_format=fmt), discriminator.to(memory_format=fmt)
    return GanModules(
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=fused),
        torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=fused),
    )


def _inputs(case: Case, device: torch.device, optimised: bool) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (case.batch, 1, *([case.size] * case.spatial_dims))
    generator = torch.Generator().manual_seed(1)
    source = (torch.rand(shape, generator=generator) * 2 - 1).to(device)
    target = (torch.rand(shape, generator=generator) * 2 - 1).to(device)
    if optimised:
        fmt = torch.channels_last_3d if case.spatial_dims == 3 else torch.channels_last
        source, target = source.contiguous(memory_format=fmt), target.contiguous(memory_format=fmt)
    return source, target


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_flops(case: Case, device: torch.device) -> float:
    """FLOPs of one training step (forward + backward of G and D) from ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    modules = _modules(case, device, optimised=False)
    source, target = _inputs(case, device, optimised=False)
    adversarial = get_adversarial_loss("lsgan")
    with FlopCounterMode(display=False) as counter:
        train_step(modules, source, target, adversarial, 100.0, bf16=False)
    return float(counter.get_total_flops())


def measure(case: Case, device: torch.device, optimised: bool, compile_: bool, steps: int, warmup: int) -> float:
    """Seconds per training step (median of 3 timed blocks of ``steps`` steps)."""
    torch.backends.cuda.matmul.allow_tf32 = optimised
    torch.backends.cudnn.allow_tf32 = optimised
    torch.backends.cudnn.benchmark = optimised
    modules = _modules(case, device, optimised)
    if optimised and compile_:
        modules = GanModules(
            torch.compile(modules.generator),
            torch.compile(modules.discriminator),
            modules.optimizer_g,
            modules.optimizer_d,
        )
    source, target = _inputs(case, device, optimised)
    adversarial = get_adversarial_loss("lsgan")
    for _ in range(warmup):
        train_step(modules, source, target, adversarial, 100.0, bf16=optimised)
    _sync(device)
    blocks = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            losses = train_step(modules, source, target, adversarial, 100.0, bf16=optimised)
        _sync(device)
        blocks.append((time.perf_counter() - start) / steps)
    if not all(torch.isfinite(value) for value in losses.values()):
        raise RuntimeError(f"{case.name} {'optimised' if optimised else 'fp32_eager'}: non-finite loss")
    return sorted(blocks)[1]


def peaks(device: torch.device, peak_tflops: float | None) -> tuple[float | None, float | None]:
    """(bf16, fp32) peaks in FLOP/s for MFU, or None when unknown (CPU: none assumed)."""
    if peak_tflops:
        return peak_tflops * 1e12, peak_tflops * 1e12
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, fp32) in PEAK_TFLOPS.items():
        if key in name:
            return bf16 * 1e12, fp32 * 1e12
    return None, None


def mlflow_overhead(steps: int) -> dict[str, float] | None:
    """Main-thread milliseconds per step of metric logging (see the module docstring)."""
    try:
        from medxlate.tracking.mlflow_tracker import MlflowTracker
        from medxlate.tracking.resilient import ResilientTracker
    except ImportError:
        return None
    values = {"loss_d": 0.5, "loss_g": 80.0, "loss_g_adversarial": 0.3, "loss_g_l1": 0.8, "lr": 2e-4}
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("resilient_commit_every_10", "synchronous_flush_every_step"):
            inner = MlflowTracker(f"sqlite:///{folder}/{mode}.db")
            tracker: Any = ResilientTracker(inner) if mode.startswith("resilient") else inner
            tracker.start("train_speed", mode, {}, {})
            start = time.perf_counter()
            for step in range(1, steps + 1):
                tracker.log_metrics(values, step=step)
                if mode.startswith("resilient") and step % 10 == 0:
                    tracker.commit()
                elif not mode.startswith("resilient"):
                    tracker.flush()
            result[f"{mode}_ms_per_step"] = 1000 * (time.perf_counter() - start) / steps
            tracker.end("FINISHED")
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every case and path; returns the JSON-able report."""
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16_peak, fp32_peak = peaks(device, args.peak_tflops)
    rows: list[Row] = []
    for case in cases(args.tiny, args.batch, args.batch_3d, not args.no_3d):
        flops = step_flops(case, device)
        baseline = None
        for path in ("fp32_eager", "optimised"):
            optimised = path == "optimised"
            seconds = measure(case, device, optimised, args.compile, args.steps, args.warmup)
            peak = bf16_peak if optimised and device.type == "cuda" else fp32_peak
            row = Row(
                case=case.name,
                path=path + ("+compile" if optimised and args.compile else ""),
                device=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
                batch=case.batch,
                size=case.size,
                items_per_s=case.batch / seconds,
                ms_per_step=1000 * seconds,
                tflop_per_step=flops / 1e12,
                mfu=(flops / seconds / peak) if peak else None,
                speedup_vs_fp32_eager=(baseline / seconds) if baseline else None,
            )
            baseline = baseline or seconds
            rows.append(row)
            print(_format(row), flush=True)
            _write(args.out, {"rows": [asdict(r) for r in rows], "partial": True})  # kept if a limit stops us
    overhead = None if args.no_mlflow else mlflow_overhead(args.mlflow_steps)
    if overhead:
        print("mlflow overhead: " + ", ".join(f"{k}={v:.3f}" for k, v in overhead.items()), flush=True)
    return {
        "rows": [asdict(row) for row in rows],
        "mlflow_overhead": overhead,
        "peaks_tflops": {"bf16": bf16_peak and bf16_peak / 1e12, "fp32": fp32_peak and fp32_peak / 1e12},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


def _write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))


def _format(row: Row) -> str:
    mfu = f"{100 * row.mfu:.1f}%" if row.mfu is not None else "-"
    speedup = f"{row.speedup_vs_fp32_eager:.2f}x" if row.speedup_vs_fp32_eager else "1.00x"
    return (
        f"{row.case:3s} {row.path:20s} batch {row.batch:3d} {row.size}^{2 if row.case == '2d' else 3}: "
        f"{row.items_per_s:9.2f} items/s  {row.ms_per_step:9.1f} ms/step  {row.tflop_per_step:.4g} TFLOP/step  "
        f"MFU {mfu}  {speedup}"
    )


def main() -> None:
    """Parse arguments, run, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--batch", type=int, default=None, help="2D batch (default 64 on CUDA, 4 on CPU)")
    parser.add_argument("--batch-3d", type=int, default=2, help="3D batch of 128^3 patches")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed block (3 blocks; median)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10 CUDA, 1 CPU)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile to the optimised path")
    parser.add_argument("--no-3d", action="store_true", help="skip the 3D case")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow overhead measurement")
    parser.add_argument("--mlflow-steps", type=int, default=200)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (overrides the table)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--tiny", action="store_true", help="small networks and sizes (checks the script)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON (default benchmarks/results/train_speed_<dev>.json)"
    )
    args = parser.parse_args()
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.batch = args.batch or (64 if cuda else 4)
    args.steps = args.steps or (20 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    args.out = args.out or Path(f"benchmarks/results/train_speed_{'cuda' if cuda else 'cpu'}.json")
    _write(args.out, run(args))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
