"""Training start-up time and peak memory as the dataset grows (the on-disk cache's promise).

For each dataset size (default 4, 16 and 64 training volumes of 256 x 256 x 128, plus one validation
volume; synthetic CT/MR/mask phantoms written once as uncompressed NIfTI under ``--workdir``) and
each sampler (``--dims 2``: slices, ``--dims 3``: patches), a fresh Python process runs
``medxlate.train`` for ``--steps`` optimizer steps of a small U-Net, twice:

* **cold**: the cache folder is deleted first, so start-up includes preprocessing and writing every
  volume into the cache;
* **warm**: the cache is already complete, so start-up is opening it.

Measured in the child process: *start-up* = seconds from calling ``train`` to the first optimizer
step done (config, model, cache build or check, first batch, first step); *total* = the whole run
(including validation of the one validation volume); *peak RSS* = ``ru_maxrss`` of the process
(``resource.getrusage``), and *baseline RSS* = after imports, before training. The claim checked:
peak RSS stays flat as the dataset grows (bounded by baseline + ``(cache_volumes + ~4)`` volumes of
9 bytes per voxel: float32 source and target, uint8 mask), and warm start-up does not grow with the
number of cached volumes.

Disk: the 64-volume dataset takes ~2.6 GB of NIfTI and ~4.6 GB of cache.

Usage (from the repository root; the lead's full run)::

    .venv/bin/python -m benchmarks.data_scaling --sizes 4 16 64 --dims 2 3 \\
        --workdir /tmp/medxlate_data_scaling --out benchmarks/results/data_scaling.json

Quick check at tiny size: ``--sizes 2 4 --shape 64 64 32 --steps 3``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

VOXEL_BYTES = 9  # cached float32 source + float32 target + uint8 mask


def make_dataset(root: Path, train_volumes: int, shape: tuple[int, int, int], seed: int = 0) -> Path:
    """Write ``train_volumes`` + 1 synthetic paired cases as uncompressed NIfTI plus ``dataset.json``."""
    import nibabel as nib

    from medxlate.data.dataset import write_dataset_index

    if (root / "dataset.json").is_file():
        return root
    affine = np.diag([-1.0, 1.0, 2.0, 1.0])  # LAS, anisotropic
    cases = []
    grid = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in shape), indexing="ij")
    for number in range(train_volumes + 1):
        rng = np.random.default_rng(seed + number)
        shift = 0.1 * rng.standard_normal(2).astype(np.float32)
        radius = ((grid[0] - shift[0]) / 0.8) ** 2 + ((grid[1] - shift[1]) / 0.65) ** 2
        body = radius < 1.0
        ct = np.where(body, np.where(radius < 0.6, 40.0, -100.0), -1000.0).astype(np.float32)
        ct += 10.0 * rng.standard_normal(shape, dtype=np.float32)
        mr = np.where(body, np.where(radius < 0.6, 600.0, 1400.0), 0.0).astype(np.float32)
        mr = np.abs(mr + 20.0 * rng.standard_normal(shape, dtype=np.float32))
        folder = root / "cases" / f"case_{number:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for role, array in (
            ("source", ct.astype(np.int16)),
            ("target", mr.astype(np.int16)),
            ("mask", body.astype(np.uint8)),
        ):
            nib.save(nib.Nifti1Image(array, affine), folder / f"{role}.nii")
            files[role] = f"cases/case_{number:03d}/{role}.nii"
        cases.append(
            {"id": f"case_{number:03d}", "split": "val" if number == train_volumes else "train", "files": files}
        )
    write_dataset_index(root, f"scaling_{train_volumes}", cases, source_modality="CT", target_modality="MR")
    return root


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One training run in this process; returns its measurements."""
    import torch

    import medxlate as mx
    from medxlate.config import validate_config
    from medxlate.tracking import NullTracker

    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data: dict[str, Any] = {
        "dataset": str(args.dataset),
        "spatial_dims": args.dims,
        "batch_size": 1,
        "cache_dir": str(args.cache),
        "cache_volumes": args.cache_volumes,
        "source_window": [-1000, 1000],
    }
    if args.dims == 3:
        data["patch_size"] = [64, 64, 32]
    cfg = validate_config(
        {
            "name": "data_scaling",
            "data": data,
            "model": {
                "generator_params": {"num_downs": 4, "ngf": 8, "norm": "batch"},
                "discriminator_params": {"ndf": 8, "n_layers": 2, "norm": "batch"},
            },
            "train": {
                "epochs": 1,
                "decay_epochs": 0,
                "max_steps_per_epoch": args.steps,
                "output_dir": str(args.output),
                "num_threads": args.threads,
                "num_workers": args.num_workers,
                "log_every": 1,
            },
            "eval": {"sw_batch_size": 8, **({"roi_size": [64, 64, 32]} if args.dims == 3 else {})},
            "tracking": {"backend": "none"},
        }
    )
    first_step: list[float] = []

    class _Clock(NullTracker):
        def log_metrics(self, metrics: dict[str, float], step: int) -> None:
            if not first_step and any(key.startswith("train/") for key in metrics):
                first_step.append(time.perf_counter())
            super().log_metrics(metrics, step)

    torch.manual_seed(0)
    start = time.perf_counter()
    mx.train(cfg, tracker=_Clock())
    total = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "startup_s": round(first_step[0] - start, 3),
        "total_s": round(total, 3),
        "baseline_rss_mb": round(baseline_kb / 1024, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def run_child(dataset: Path, cache: Path, output: Path, dims: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter and parse its JSON line."""
    command = [
        sys.executable, "-m", "benchmarks.data_scaling", "--child",
        "--dataset", str(dataset), "--cache", str(cache), "--output", str(output),
        "--dims", str(dims), "--steps", str(args.steps), "--cache-volumes", str(args.cache_volumes),
        "--num-workers", str(args.num_workers), "--threads", str(args.threads),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": "."})
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_cost(cache: Path, repeats: int = 20) -> dict[str, float]:
    """Median ms to get one training item's voxels from a cached case: our memory-mapped ``.npy``
    (one axial slice; one 64 x 64 x 32 patch) against MONAI ``PersistentDataset``'s storage, which
    ``torch.load``s the whole preprocessed item (all three volumes) on every access."""
    import statistics
    import tempfile

    import torch

    from medxlate.data.cache import VolumeReader, _read_case

    case = _read_case(next(p for p in sorted(cache.iterdir()) if p.is_dir() and p.name.isdigit()))
    reader = VolumeReader([case], in_memory=0)
    x, y, z = case.shape
    everything = slice(None)

    def timed(function: Any) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return round(1000 * statistics.median(times), 2)

    with tempfile.TemporaryDirectory() as tmp:
        stored = Path(tmp) / "item.pt"
        torch.save({role: torch.from_numpy(np.load(case.path(role))) for role in ("source", "target", "mask")}, stored)
        persistent = timed(lambda: torch.load(stored, weights_only=True))
    slab = (slice(z // 2 - 16, z // 2 + 16), slice(x // 2 - 32, x // 2 + 32), slice(y // 2 - 32, y // 2 + 32))
    return {
        "mmap_slice_ms": timed(
            lambda: [
                reader.region(0, r, slice(z // 2, z // 2 + 1), everything, everything)
                for r in ("source", "target", "mask")
            ]
        ),
        "mmap_patch_ms": timed(lambda: [reader.region(0, r, *slab) for r in ("source", "target", "mask")]),
        "persistent_dataset_item_ms": persistent,
    }


def main() -> None:
    """Parse arguments; as parent, generate datasets and run cold/warm children per size and sampler."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 128])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cache-volumes", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medxlate_data_scaling"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/data_scaling.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.dims = args.dims[0] if isinstance(args.dims, list) else args.dims
        print(json.dumps(child(args)))
        return
    shape = tuple(args.shape)
    volume_mb = VOXEL_BYTES * int(np.prod(shape)) / 2**20
    rows = []
    for size in args.sizes:
        dataset = make_dataset(args.workdir / f"{size}x{'x'.join(map(str, shape))}", size, shape)  # type: ignore[arg-type]
        for dims in args.dims:
            cache = args.workdir / f"cache_{size}_{dims}d"
            shutil.rmtree(cache, ignore_errors=True)
            for state in ("cold", "warm"):
                output = args.workdir / f"run_{size}_{dims}d_{state}"
                shutil.rmtree(output, ignore_errors=True)
                result = run_child(dataset, cache, output, dims, args)
                rows.append(
                    {"volumes": size, "sampler": "slices" if dims == 2 else "patches", "cache": state, **result}
                )
                print(json.dumps(rows[-1]), flush=True)
    costs = read_cost(args.workdir / f"cache_{args.sizes[-1]}_{args.dims[0]}d")
    print(json.dumps({"read_cost": costs}), flush=True)
    report = {
        "read_cost": costs,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "shape": list(shape),
        "steps": args.steps,
        "cache_volumes": args.cache_volumes,
        "num_workers": args.num_workers,
        "cached_volume_mb": round(volume_mb, 1),
        "rss_bound_mb": f"baseline + (cache_volumes + 4) x {volume_mb:.0f} MB",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(_table(rows))


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| volumes | sampler | cache | start-up (s) | total (s) | baseline RSS (MB) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['volumes']} | {r['sampler']} | {r['cache']} | {r['startup_s']:.2f} | {r['total_s']:.2f} "
        f"| {r['baseline_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
