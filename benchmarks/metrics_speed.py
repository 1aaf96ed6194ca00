"""SSIM speed and agreement: medxlate vs scikit-image vs MONAI, on the same inputs in one run.

Timed cases: one 128³ volume (3D SSIM) and a batch of 16 slices of 256² (2D SSIM), CT-like values
in HU with ``data_range=4095`` (the [-1024, 3071] window). Methods, all with Gaussian weights,
sigma 1.5, an 11-voxel window and population covariance (Wang et al. 2004):

* ``medxlate``: ``medxlate.metrics.ssim`` (CPU, and CUDA when available);
* ``skimage``: ``skimage.metrics.structural_similarity`` on float32 arrays (CPU only, single
  threaded, one call per slice for the 2D batch);
* ``monai``: ``monai.metrics.SSIMMetric(kernel_type="gaussian", win_size=11, kernel_sigma=1.5)``
  (skipped if MONAI is not installed).

Values are compared with scikit-image run in float64 (the reference, untimed). Times are medians of
``--repeats`` runs after ``--warmup`` runs; CUDA runs synchronise before and after each run. An
untimed accuracy check repeats the 3D case with a large offset and a small range (MR-like signal,
10000 + values/4, ``data_range=1000``), where float32 ``E[x²] - E[x]²`` cancels.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.metrics_speed [--threads N] [--repeats 7] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from medxlate.metrics import ssim

CT_RANGE = 4095.0  # CT window [-1024, 3071] HU
SHAPE_3D = (1, 1, 128, 128, 128)
SHAPE_2D = (16, 1, 256, 256)


@dataclass(frozen=True)
class Row:
    """One (case, device, method) result; times are None for the untimed accuracy check."""

    case: str
    device: str
    method: str
    max_abs_diff_vs_skimage64: float
    median_ms: float | None = None
    min_ms: float | None = None
    time_vs_medxlate: float | None = None  # this method's median / medxlate's (same device; skimage: CPU)


def ct_like_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (pred, target) of shape (B, 1, *spatial) with smooth structure, in HU.

    Target: 40 HU plus smooth structures of 300 HU standard deviation plus 8 HU noise; prediction:
    target plus a smooth 30 HU error field and 15 HU noise.
    """
    rng = np.random.default_rng(seed)
    coarse = (0, 0, *([3.0] * (len(shape) - 2)))
    fine = (0, 0, *([1.0] * (len(shape) - 2)))
    field = gaussian_filter(rng.standard_normal(shape), coarse)
    target = 40.0 + 300.0 * field / field.std() + 8.0 * rng.standard_normal(shape)
    error = gaussian_filter(rng.standard_normal(shape), fine)
    pred = target + 30.0 * error / error.std() + 15.0 * rng.standard_normal(shape)
    return pred.astype(np.float32), target.astype(np.float32)


def skimage_method(data_range: float, dtype: type) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """scikit-image SSIM per sample, computed in ``dtype`` (float32: as timed; float64: reference)."""
    from skimage.metrics import structural_similarity

    def run(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.array(
            [
                structural_similarity(
                    p[0].astype(dtype),
                    t[0].astype(dtype),
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    data_range=data_range,
                )
                for p, t in zip(pred, target, strict=True)
            ]
        )

    return run


def torch_method(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pred: np.ndarray, target: np.ndarray, device: str
) -> Callable[[], np.ndarray]:
    """Bind a torch SSIM to inputs moved to ``device`` once, outside the timed call."""
    pred_t, target_t = torch.from_numpy(pred).to(device), torch.from_numpy(target).to(device)
    return lambda: fn(pred_t, target_t).reshape(-1).cpu().numpy()


def monai_ssim(spatial_dims: int, data_range: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """MONAI's ``SSIMMetric`` with the same settings, returning (B,); None if MONAI is missing."""
    try:
        from monai.metrics import SSIMMetric
    except ImportError:
        return None
    metric = SSIMMetric(
        spatial_dims=spatial_dims,
        data_range=data_range,
        kernel_type="gaussian",
        win_size=11,
        kernel_sigma=1.5,
        reduction="none",
    )

    def run(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values = metric(pred, target)  # (B, 1)
        metric.reset()
        return values.reshape(-1)

    return run


def methods(
    pred: np.ndarray, target: np.ndarray, data_range: float, devices: list[str]
) -> list[tuple[str, str, Callable[[], np.ndarray]]]:
    """(device, name, call) for every method and device, bound to (B, 1, *spatial) inputs."""
    out = [("cpu", "skimage", partial(skimage_method(data_range, np.float32), pred, target))]
    monai = monai_ssim(pred.ndim - 2, data_range)
    ours = partial(ssim, data_range=data_range, spatial_dims=pred.ndim - 2)
    for device in devices:
        out.append((device, "medxlate", torch_method(ours, pred, target, device)))
        if monai is not None:
            out.append((device, "monai", torch_method(monai, pred, target, device)))
    return out


def time_it(fn: Callable[[], object], warmup: int, repeats: int, device: str) -> list[float]:
    """Wall times in seconds of ``repeats`` calls after ``warmup`` calls (CUDA synchronised)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def bench_case(name: str, shape: tuple[int, ...], args: argparse.Namespace, devices: list[str]) -> list[Row]:
    """Time every method on one CT-like case and compare its values with float64 scikit-image."""
    pred, target = ct_like_pair(shape, seed=0)
    reference = skimage_method(CT_RANGE, np.float64)(pred, target)
    rows = []
    for device, method, run in methods(pred, target, CT_RANGE, devices):
        times = time_it(run, args.warmup, args.repeats, device)
        diff = float(np.abs(run() - reference).max())
        rows.append(Row(name, device, method, diff, 1e3 * statistics.median(times), 1e3 * min(times)))
    ours = {row.device: row.median_ms for row in rows if row.method == "medxlate"}
    return [replace(row, time_vs_medxlate=row.median_ms / ours[row.device]) for row in rows]  # type: ignore[operator]


def offset_accuracy(devices: list[str]) -> list[Row]:
    """Untimed: the 3D case as MR-like signal (10000 + CT/4, data_range 1000) vs float64 scikit-image."""
    pred, target = (10000.0 + 0.25 * image for image in ct_like_pair(SHAPE_3D, seed=0))
    pred, target = pred.astype(np.float32), target.astype(np.float32)
    data_range = 1000.0
    reference = skimage_method(data_range, np.float64)(pred, target)
    name = "3d offset 1e4"
    return [
        Row(name, device, method, float(np.abs(run() - reference).max()))
        for device, method, run in methods(pred, target, data_range, devices)
    ]


def print_table(rows: list[Row]) -> None:
    """Print the rows as a fixed-width table."""
    header = (
        f"{'case':<15}{'device':<7}{'method':<10}{'median ms':>11}{'min ms':>10}{'x ours':>8}{'max|d| vs sk64':>16}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        median = f"{row.median_ms:.1f}" if row.median_ms is not None else "-"
        fastest = f"{row.min_ms:.1f}" if row.min_ms is not None else "-"
        ratio = f"{row.time_vs_medxlate:.2f}" if row.time_vs_medxlate is not None else "-"
        print(
            f"{row.case:<15}{row.device:<7}{row.method:<10}{median:>11}{fastest:>10}{ratio:>8}"
            f"{row.max_abs_diff_vs_skimage64:>16.1e}"
        )
    print("x ours: median time / medxlate's median on the same device (skimage: vs medxlate on CPU)")


def environment(devices: list[str]) -> dict[str, object]:
    """Versions and hardware the numbers were measured on."""
    import skimage

    try:
        import monai

        monai_version: str | None = monai.__version__
    except ImportError:
        monai_version = None
    env: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "skimage": skimage.__version__,
        "monai": monai_version,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": os.getloadavg()[0],
    }
    if "cuda" in devices:
        env["cuda_device"] = torch.cuda.get_device_name()
    return env


def main() -> None:
    """Parse arguments, run the cases, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per method (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default benchmarks/results/metrics_speed_<device>.json)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    rows = [
        *bench_case("3d 1x128^3", SHAPE_3D, args, devices),
        *bench_case("2d 16x256^2", SHAPE_2D, args, devices),
        *offset_accuracy(devices),
    ]
    print_table(rows)
    out = args.out or Path("benchmarks/results") / f"metrics_speed_{devices[-1]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "environment": environment(devices),
        "settings": {"threads": args.threads, "repeats": args.repeats, "warmup": args.warmup},
        "results": [asdict(row) for row in rows],
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
