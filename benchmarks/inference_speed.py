"""Whole-volume 3D translation: medxlate's sliding-window path vs MONAI's SlidingWindowInferer defaults.

Same 3D U-Net (random weights, seeded; the size of the 3D recipe by default), same normalised
CT-sized input, one timed run each:

* ``medxlate``: :func:`medxlate.inference.infer_volume` with the recipe's
  :class:`~medxlate.inference.SlidingWindowStrategy` (Gaussian blending, ``--overlap``,
  ``--sw-batch-size`` windows per pass, bf16 autocast on CUDA);
* ``medxlate Translator``: the whole :class:`~medxlate.inference.Translator` call on a volume in HU
  with a flipped, anisotropic affine (HU window, RAS reorientation, the windows, back to the
  input's grid and MR units);
* ``monai default``: ``SlidingWindowInferer(roi_size=ROI)`` with every other setting at MONAI's
  default (one window per pass, overlap 0.25, constant blending), fp32, under ``torch.no_grad``.

Outputs are compared (``max|d|``, ``mean|d|`` in model units, tanh range [-1, 1]); they differ
only by the blending and, on CUDA, by bf16. ``--check`` runs the exactness checks at a tiny size
instead: medxlate with constant blending and one window per pass must equal MONAI's default, and
Gaussian blending of a voxel-wise network must return that network's output everywhere.

``--input CT`` times instead the whole translation of a real CT (a NIfTI file or DICOM series
folder) with a trained 3D checkpoint (``--checkpoint``; without one, the recipe's U-Net with random
weights): load, translate, and write NIfTI, each timed, and the output checked to lie on the
input's grid and affine.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.inference_speed                      # CPU: 256 x 256 x 96
    .venv/bin/python -m benchmarks.inference_speed --shape 512 512 300  # the CT size (the GPU default)
    .venv/bin/python -m benchmarks.inference_speed --check
    .venv/bin/python -m benchmarks.inference_speed --input cxr.nii.gz [--checkpoint last.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer

from medxlate.inference import SlidingWindowStrategy, Translator, infer_volume, resolve_device
from medxlate.models import build_generator
from medxlate.transforms import Preprocessing, window_to_unit

# the 3D demo recipe's generator and inference settings (pipelines/ct2mr_3d.yaml); override with the flags
DEFAULT_MODEL = {"num_downs": 4, "ngf": 16, "norm": "batch", "dropout": 0.5}
DEFAULT_ROI = (96, 96, 16)
DEFAULT_OVERLAP = 0.25
DEFAULT_SW_BATCH = 16
WINDOW_HU = (-1000.0, 1000.0)
SPACING_MM = (0.703125, 0.703125, 2.5)  # LIDC-IDRI-0001's


@dataclass(frozen=True)
class Row:
    """One timed method."""

    method: str
    seconds: float
    speedup_vs_monai_default: float | None
    max_abs_diff_vs_monai: float | None
    mean_abs_diff_vs_monai: float | None


def ct_like_volume(shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """(1, X, Y, Z) float32 in HU: air outside an elliptic body of soft tissue, lungs, bone, noise."""
    gen = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(-1, 1, n) for n in shape]
    x, y, _ = torch.meshgrid(*axes, indexing="ij")
    radius = (x / 0.9) ** 2 + (y / 0.7) ** 2
    hu = torch.full(shape, -1000.0)
    hu[radius < 1] = 40.0
    hu[((x.abs() - 0.4) / 0.25) ** 2 + (y / 0.4) ** 2 < 1] = -850.0
    hu[(x / 0.1) ** 2 + ((y + 0.5) / 0.1) ** 2 < 1] = 700.0
    return (hu + 20.0 * torch.randn(shape, generator=gen))[None]


def flipped_affine(spacing: tuple[float, float, float]) -> torch.Tensor:
    """LAS voxel-to-RAS affine with the given spacing (x flipped, as DICOM CTs load)."""
    affine = torch.diag(torch.tensor([-spacing[0], spacing[1], spacing[2], 1.0], dtype=torch.float64))
    affine[:3, 3] = torch.tensor([180.0, -180.0, -300.0], dtype=torch.float64)
    return affine


def make_generator(params: dict[str, object], device: torch.device, seed: int = 0) -> torch.nn.Module:
    """The recipe's 3D U-Net with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return build_generator("unet", 3, 1, 1, **params).to(device).eval()


def _timed(run: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    output = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return output, time.perf_counter() - start


def monai_default(generator: torch.nn.Module, source: torch.Tensor, roi: tuple[int, ...], device: torch.device):
    """MONAI's SlidingWindowInferer with its defaults (fp32), on the same device; (1, X, Y, Z) on the CPU."""
    inferer = SlidingWindowInferer(roi_size=roi)
    with torch.no_grad():
        return inferer(source[None].to(device), generator)[0].float().cpu()


def measure(args: argparse.Namespace) -> dict[str, object]:
    """Time the three methods once each on one volume; return the JSON-able report."""
    device = resolve_device(args.device)
    shape = tuple(args.shape or ((512, 512, 300) if device.type == "cuda" else (256, 256, 96)))
    params = {**DEFAULT_MODEL, "num_downs": args.num_downs, "ngf": args.ngf}
    generator = make_generator(params, device)
    strategy = SlidingWindowStrategy(
        roi_size=tuple(args.roi), overlap=args.overlap, mode="gaussian", sw_batch_size=args.sw_batch_size
    )
    divisible = generator.required_multiple
    hu = ct_like_volume(shape)
    source = window_to_unit(hu, WINDOW_HU)
    warm = source[..., : args.roi[2]][:, : args.roi[0], : args.roi[1]]  # one window: threads, cuDNN
    infer_volume(generator, warm, strategy, divisible, device)
    monai_default(generator, warm, tuple(args.roi), device)

    reference, monai_s = _timed(lambda: monai_default(generator, source, tuple(args.roi), device), device)
    ours, ours_s = _timed(lambda: infer_volume(generator, source, strategy, divisible, device), device)
    prep = Preprocessing(WINDOW_HU, (0.5, 99.5), target_range=(0.0, 1000.0), divisible=divisible)
    translator = Translator(generator, prep, device=device, strategy=strategy)
    volume = MetaTensor(hu, affine=flipped_affine(SPACING_MM))
    _, translator_s = _timed(lambda: translator(volume), device)

    diff = (ours - reference).abs()
    rows = [
        Row("monai default (fp32, 1 window/pass, overlap 0.25, constant)", monai_s, 1.0, 0.0, 0.0),
        Row("medxlate infer_volume", ours_s, monai_s / ours_s, float(diff.max()), float(diff.mean())),
        Row("medxlate Translator (HU in, grid restored)", translator_s, monai_s / translator_s, None, None),
    ]
    return {
        "benchmark": "inference_speed",
        "device": _device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "platform": platform.platform(),
        "shape": list(shape),
        "generator": {"name": "unet", **params, "parameters": sum(p.numel() for p in generator.parameters())},
        "medxlate_strategy": {**asdict(strategy), "roi_size": list(strategy.roi_size), "bf16": device.type == "cuda"},
        "rows": [asdict(row) for row in rows],
    }


def check(device: torch.device) -> dict[str, float]:
    """Exactness at tiny size; raises AssertionError on a mismatch. Returns the largest differences."""
    generator = make_generator({**DEFAULT_MODEL, "num_downs": 2, "ngf": 4}, device)
    source = window_to_unit(ct_like_volume((20, 18, 13), seed=1), WINDOW_HU)
    roi = (8, 8, 8)
    reference = monai_default(generator, source, roi, device)
    constant = SlidingWindowStrategy(roi_size=roi, overlap=0.25, mode="constant", sw_batch_size=1)
    same = infer_volume(generator, source, constant, 4, device, bf16=False)
    torch.testing.assert_close(same, reference, rtol=1e-5, atol=1e-5)

    class Pointwise(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(0.7 * x + 0.1)

    gaussian = SlidingWindowStrategy(roi_size=roi, overlap=0.5, mode="gaussian", sw_batch_size=3)
    blended = infer_volume(Pointwise(), source, gaussian, 4, device)
    torch.testing.assert_close(blended, Pointwise()(source), rtol=1e-5, atol=1e-5)
    return {
        "constant_vs_monai_default": float((same - reference).abs().max()),
        "gaussian_pointwise_vs_direct": float((blended - Pointwise()(source)).abs().max()),
    }


def translate_real(args: argparse.Namespace) -> dict[str, object]:
    """Load, translate and save a real CT with a 3D checkpoint (or random weights); time each step."""
    import tempfile

    from medxlate.io import load_volume, save_volume

    device = resolve_device(args.device)
    start = time.perf_counter()
    volume = load_volume(args.input)
    load_s = time.perf_counter() - start
    if args.checkpoint:
        translator = Translator.from_checkpoint(args.checkpoint, device=device)
    else:
        generator = make_generator({**DEFAULT_MODEL, "num_downs": args.num_downs, "ngf": args.ngf}, device)
        prep = Preprocessing(WINDOW_HU, (0.5, 99.5), target_range=(0.0, 1000.0), divisible=generator.required_multiple)
        strategy = SlidingWindowStrategy(
            roi_size=tuple(args.roi), overlap=args.overlap, mode="gaussian", sw_batch_size=args.sw_batch_size
        )
        translator = Translator(generator, prep, device=device, strategy=strategy)
    result, translate_s = _timed(lambda: translator(volume), device)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        save_volume(result, Path(folder) / "synthetic.nii.gz", description=translator.description)
        save_s = time.perf_counter() - start
    same_grid = tuple(result.shape) == tuple(volume.shape) and bool(
        torch.allclose(result.affine.double(), volume.affine.double(), atol=1e-4)
    )
    return {
        "benchmark": "inference_speed --input",
        "device": _device_name(device),
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "input": str(args.input),
        "input_shape": list(volume.shape[1:]),
        "checkpoint": str(args.checkpoint) if args.checkpoint else "random weights",
        "strategy": {**asdict(translator.strategy)},
        "seconds": {"load": load_s, "translate": translate_s, "save": save_s},
        "output_on_input_grid": same_grid,
        "output_finite": bool(torch.isfinite(result).all()),
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores)"


def format_table(report: dict[str, object]) -> str:
    """A plain-text table of the rows."""
    lines = [
        f"{report['device']}, volume {' x '.join(map(str, report['shape']))}, "
        f"U-Net num_downs={report['generator']['num_downs']} ngf={report['generator']['ngf']}, "  # type: ignore[index]
        f"medxlate roi {report['medxlate_strategy']['roi_size']} "  # type: ignore[index]
        f"overlap {report['medxlate_strategy']['overlap']} "  # type: ignore[index]
        f"batch {report['medxlate_strategy']['sw_batch_size']}",  # type: ignore[index]
        f"{'method':<60} {'seconds':>9} {'speed-up':>9} {'max|d|':>8} {'mean|d|':>8}",
    ]
    for row in report["rows"]:  # type: ignore[attr-defined]
        speed = f"{row['speedup_vs_monai_default']:.2f}x"
        max_d = "" if row["max_abs_diff_vs_monai"] is None else f"{row['max_abs_diff_vs_monai']:.3g}"
        mean_d = "" if row["mean_abs_diff_vs_monai"] is None else f"{row['mean_abs_diff_vs_monai']:.3g}"
        lines.append(f"{row['method']:<60} {row['seconds']:>9.2f} {speed:>9} {max_d:>8} {mean_d:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--shape", type=int, nargs=3, help="X Y Z (default: 512 512 300 on CUDA, 256 256 96 on CPU)")
    parser.add_argument("--roi", type=int, nargs=3, default=list(DEFAULT_ROI), help="window size (medxlate and MONAI)")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP, help="medxlate's window overlap")
    parser.add_argument("--sw-batch-size", type=int, default=DEFAULT_SW_BATCH, help="medxlate's windows per pass")
    parser.add_argument("--num-downs", type=int, default=DEFAULT_MODEL["num_downs"])
    parser.add_argument("--ngf", type=int, default=DEFAULT_MODEL["ngf"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--check", action="store_true", help="only the exactness checks, at a tiny size")
    parser.add_argument("--input", type=Path, help="time the translation of this real CT (NIfTI or DICOM folder)")
    parser.add_argument("--checkpoint", type=Path, help="with --input: a trained 3D checkpoint")
    parser.add_argument(
        "--out", type=Path, help="JSON path (default: benchmarks/results/inference_speed_<device>.json)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.check:
        print(json.dumps(check(resolve_device(args.device)), indent=2))
        return
    device_kind = "cuda" if resolve_device(args.device).type == "cuda" else "cpu"
    if args.input:
        report = translate_real(args)
        print(json.dumps(report, indent=2))
        out = args.out or Path("benchmarks/results") / f"inference_real_ct_{device_kind}.json"
    else:
        report = measure(args)
        print(format_table(report))
        out = args.out or Path("benchmarks/results") / f"inference_speed_{device_kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
