"""Translation quality of the recipes on the shipped sample, for the same training budget.

Recipes (all from the shipped pipelines, on the same prepared dataset, seed 0, the same number of
epochs and optimizer steps per epoch, batch sizes as in their pipelines):

* ``2d_gan``: ``pipelines/ct2mr_2d.yaml`` (the 2D demo);
* ``2d_l1``: the same with ``loss.lambda_adv: 0`` (a plain L1 U-Net of the same size);
* ``2d_gan_adv0.1``: the same with ``loss.lambda_adv: 0.1`` (a 10x weaker adversarial term);
* ``2.5d_gan``: the 2D demo with ``data.context_slices: 1`` (3 slices in, 1 out);
* ``3d_gan``: ``pipelines/ct2mr_3d.yaml`` (3D patches, sliding-window inference);
* ``3d_l1``: the same with ``loss.lambda_adv: 0``.

Each trained checkpoint translates the validation slab through the public ``Translator`` (exactly
as a user would), and is compared inside the body mask with the noisy simulated MR (the training
target) and with the noise-free simulation: SSIM (3D, or the mean of 2D SSIM over axial slices
when the slab is thinner than the window, as validation does), PSNR and MAE, each with
``data_range`` = that reference's max - min. Two more measures, inside the body:

* ``sharpness``: mean squared in-plane Laplacian of the prediction over that of the noise-free
  target (1 = as much fine detail as the truth; < 1 blurred; > 1 noise or invented texture). The
  noisy target's own ratio is reported as the ``noisy target`` row.
* ``slice_diff``: mean |I(z+1) - I(z)| of the prediction over that of the noise-free target
  (1 = as much slice-to-slice change as the truth; above it, slice-wise striping), and
  ``slice_diff_mae``: the mean absolute difference between the prediction's and the noise-free
  target's neighbouring-slice differences (in MR units; 0 = consistent along z).

Two oracle rows bound what the training target allows: the noise-free simulation itself (a perfect
denoiser, what L1 regression tends to: the conditional median), and the noise-free simulation plus
a fresh realisation of the same Rician noise (sigma estimated from the air), i.e. a model that
learned the target distribution exactly, noise included (what an adversarial loss pushes towards).

Writes ``--out`` (JSON), prints a Markdown table and saves a picture (``--picture``): for each
recipe the axial, coronal and sagittal planes through the slab's centre (coronal and sagittal doubled,
z stretched to the voxel aspect), so slice-to-slice striping of the 2D models shows in the coronal and sagittal views.

Usage (from the repository root; the full run takes roughly 6 x the 2D demo's training time)::

    .venv/bin/python -m benchmarks.quality --epochs 12 --steps-per-epoch 64 \\
        --out benchmarks/results/quality.json --picture docs/quality.png

Quick check at tiny settings: ``--epochs 1 --steps-per-epoch 2 --tiny``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data" / "lidc_idri_0001"


@dataclass(frozen=True)
class Recipe:
    """A pipeline's config plus the overrides that make the variant."""

    name: str
    pipeline: str
    overrides: dict[str, Any]


RECIPES = (
    Recipe("2d_gan", "pipelines/ct2mr_2d.yaml", {}),
    Recipe("2d_l1", "pipelines/ct2mr_2d.yaml", {"loss.lambda_adv": 0.0}),
    Recipe("2d_gan_adv0.1", "pipelines/ct2mr_2d.yaml", {"loss.lambda_adv": 0.1}),
    Recipe("2.5d_gan", "pipelines/ct2mr_2d.yaml", {"data.context_slices": 1}),
    Recipe("3d_gan", "pipelines/ct2mr_3d.yaml", {}),
    Recipe("3d_l1", "pipelines/ct2mr_3d.yaml", {"loss.lambda_adv": 0.0}),
)
TINY = {
    "model.generator_params": {"num_downs": 4, "ngf": 4, "norm": "batch", "dropout": 0.5},
    "model.discriminator_params": {"ndf": 4, "n_layers": 2, "norm": "batch"},
}


def laplacian_energy(volume: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean squared in-plane (X, Y) 5-point Laplacian over ``mask`` voxels away from the edges.

    Args:
        volume: (X, Y, Z) intensities.
        mask: (X, Y, Z) boolean region.
    """
    lap = (
        volume[:-2, 1:-1] + volume[2:, 1:-1] + volume[1:-1, :-2] + volume[1:-1, 2:] - 4 * volume[1:-1, 1:-1]
    )  # (X-2, Y-2, Z)
    inside = mask[1:-1, 1:-1]
    return float((lap[inside] ** 2).mean())


def slice_differences(volume: torch.Tensor) -> torch.Tensor:
    """I(z+1) - I(z) of an (X, Y, Z) volume, shape (X, Y, Z-1)."""
    return volume[..., 1:] - volume[..., :-1]


def consistency(prediction: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """Neighbouring-slice change of ``prediction`` against ``truth`` inside ``mask`` (both slices in it)."""
    both = mask[..., 1:] & mask[..., :-1]
    pred_diff, true_diff = slice_differences(prediction)[both], slice_differences(truth)[both]
    return {
        "slice_diff": float(pred_diff.abs().mean() / true_diff.abs().mean()),
        "slice_diff_mae": float((pred_diff - true_diff).abs().mean()),
    }


def score(
    prediction: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor
) -> dict[str, float | None]:
    """All measures of one (X, Y, Z) prediction in MR units."""
    from medxlate.training.validation import volume_metrics

    result: dict[str, float] = {}
    for suffix, reference in (("noisy", noisy), ("clean", clean)):
        values = volume_metrics(prediction, reference, mask)
        for name in ("ssim_body", "psnr_body", "mae_body"):
            result[f"{name}_{suffix}"] = values[name]
    result["sharpness"] = laplacian_energy(prediction, mask) / laplacian_energy(clean, mask)
    result.update(consistency(prediction, clean, mask))
    return {k: (v if np.isfinite(v) else None) for k, v in result.items()}  # PSNR of identical images: none


def rician_sigma(noisy: torch.Tensor, clean: torch.Tensor) -> float:
    """Noise level of the simulation, from the air (noise-free signal 0, Rayleigh: E[M^2] = 2 sigma^2)."""
    air = clean == 0
    return float(torch.sqrt((noisy[air].double() ** 2).mean() / 2))


def with_fresh_noise(clean: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    """|clean + sigma (g1 + i g2)|: what a model that learned the target distribution exactly, noise
    included, would produce (an independent realisation of the same Rician noise)."""
    generator = torch.Generator().manual_seed(seed)
    real = clean + sigma * torch.randn(clean.shape, generator=generator)
    imaginary = sigma * torch.randn(clean.shape, generator=generator)
    return torch.sqrt(real**2 + imaginary**2)


def train_recipe(recipe: Recipe, dataset: Path, out: Path, args: argparse.Namespace) -> tuple[Path, float]:
    """Train one recipe for the common budget; returns its checkpoint and the wall time."""
    from medxlate.api import train
    from medxlate.config import load_config
    from medxlate.pipeline import load_pipeline
    from medxlate.tracking import NullTracker

    pipeline = load_pipeline(REPO / recipe.pipeline)
    overrides: dict[str, Any] = {
        **pipeline.overrides,
        **recipe.overrides,
        **(TINY if args.tiny else {}),
        "data.dataset": str(dataset),
        "data.cache_dir": str(out.parent / "cache"),  # one preprocessing for all recipes: one cache
        "train.output_dir": str(out),
        "train.epochs": args.epochs,
        "train.decay_epochs": args.epochs // 2,
        "train.max_steps_per_epoch": args.steps_per_epoch,
        "train.num_threads": args.threads,
        "train.log_every": 1000,
        "tracking.backend": "none",
    }
    cfg = load_config(REPO / pipeline.config, overrides)
    if cfg.data.spatial_dims == 3:  # enough patches for the same number of steps per epoch
        train_volumes = 2
        needed = -(-args.steps_per_epoch * cfg.data.batch_size // train_volumes)
        cfg = load_config(REPO / pipeline.config, {**overrides, "data.patches_per_volume": needed})
    start = time.perf_counter()
    result = train(cfg, tracker=NullTracker())
    return result.checkpoint, time.perf_counter() - start


def plain(volume: torch.Tensor) -> torch.Tensor:
    """float32 torch tensor without MONAI metadata."""
    return volume.as_subclass(torch.Tensor).float()


def load_val(dataset: Path) -> dict[str, torch.Tensor]:
    """The validation case's CT (MetaTensor, HU) and its noisy/noise-free MR and mask, (X, Y, Z)."""
    from medxlate.data import read_dataset
    from medxlate.io import load_volume

    (case,) = read_dataset(dataset).split("val")
    return {
        "ct": load_volume(case.source),
        "noisy": plain(load_volume(case.target)[0]),
        "clean": plain(load_volume(case.files["target_noise_free"])[0]),
        "mask": plain(load_volume(case.files["mask"])[0]) > 0.5,
    }


def picture(volumes: dict[str, torch.Tensor], spacing: tuple[float, float, float], path: Path) -> None:
    """Rows = volumes, columns = axial | coronal | sagittal through the centre; one grey scale per row
    set by the noise-free MR's 1st-99th percentiles (the CT row by a soft-tissue window)."""
    from PIL import Image, ImageDraw

    from medxlate.io.atomic import atomic_path

    reference = volumes["noise-free MR"]
    low, high = np.percentile(reference.numpy(), [1, 99])
    x, y, z = (s // 2 for s in reference.shape)
    stretch = spacing[2] / spacing[0]
    rows = []
    for label, volume in volumes.items():
        lo, hi = (-200.0, 300.0) if label == "CT" else (low, high)
        planes = [volume[:, :, z], volume[:, y, :], volume[x, :, :]]  # axial (X,Y), coronal (X,Z), sagittal (Y,Z)
        tiles = []
        for number, plane in enumerate(planes):
            image = np.clip((plane.numpy() - lo) / (hi - lo), 0, 1)
            image = np.flipud(np.rot90(image)) if number == 0 else np.flipud(image.T)  # anterior/superior up
            tile = Image.fromarray((255 * image).astype(np.uint8))
            if number:  # z stretched to the voxel aspect, and both views doubled so that stripes show
                tile = tile.resize((2 * tile.width, round(2 * tile.height * stretch)), Image.NEAREST)
            tiles.append(tile)
        height = max(t.height for t in tiles)
        row = Image.new("L", (sum(t.width for t in tiles) + 160 + 8 * len(tiles), height), 0)
        ImageDraw.Draw(row).text((4, height // 2), label, fill=255)
        offset = 160
        for tile in tiles:
            row.paste(tile, (offset, 0))
            offset += tile.width + 8
        rows.append(row)
    sheet = Image.new("L", (max(r.width for r in rows), sum(r.height + 6 for r in rows)), 0)
    top = 0
    for row in rows:
        sheet.paste(row, (0, top))
        top += row.height + 6
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def main() -> None:
    """Prepare the sample once, train every recipe, score, write JSON, table and picture."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--steps-per-epoch", type=int, default=64)
    parser.add_argument("--recipes", nargs="*", default=[r.name for r in RECIPES], help="none: oracle rows only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="tiny networks (a smoke test of the benchmark)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medxlate_quality"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.json"))
    parser.add_argument("--picture", type=Path, default=Path("docs/quality.png"))
    args = parser.parse_args()
    from medxlate.config import load_prepare_config
    from medxlate.data import fingerprint_dataset, run_prepare
    from medxlate.inference import Translator

    dataset = args.workdir / "dataset"
    run_prepare(SAMPLE, dataset, load_prepare_config(None))
    fingerprint_dataset(dataset)
    val = load_val(dataset)
    target_row = score(val["noisy"], val["noisy"], val["clean"], val["mask"])
    rows = [{"recipe": "noisy target", **{k: (None if k.endswith("_noisy") else v) for k, v in target_row.items()}}]
    sigma = rician_sigma(val["noisy"], val["clean"])
    rows.append({"recipe": "oracle: noise-free MR", **score(val["clean"], val["noisy"], val["clean"], val["mask"])})
    resampled = with_fresh_noise(val["clean"], sigma)
    rows.append({"recipe": "oracle: + fresh noise", **score(resampled, val["noisy"], val["clean"], val["mask"])})
    shown = {"CT": plain(val["ct"][0]), "noise-free MR": val["clean"], "noisy MR (target)": val["noisy"]}
    for recipe in (r for r in RECIPES if r.name in args.recipes):
        checkpoint, seconds = train_recipe(recipe, dataset, args.workdir / "runs" / recipe.name, args)
        prediction = plain(Translator.from_checkpoint(checkpoint, device="cpu")(val["ct"])[0])
        rows.append(
            {
                "recipe": recipe.name,
                "train_s": round(seconds, 1),
                **score(prediction, val["noisy"], val["clean"], val["mask"]),
            }
        )
        shown[recipe.name] = prediction
        print(json.dumps(rows[-1]), flush=True)
    spacing = tuple(float(s) for s in val["ct"].pixdim[:3])
    picture(shown, spacing, args.picture)  # type: ignore[arg-type]
    report = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "tiny": args.tiny,
        "rician_sigma": round(sigma, 2),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the rows."""
    columns = [
        ("SSIM body (noisy)", "ssim_body_noisy", "{:.3f}"),
        ("SSIM body (clean)", "ssim_body_clean", "{:.3f}"),
        ("PSNR body (noisy)", "psnr_body_noisy", "{:.2f}"),
        ("PSNR body (clean)", "psnr_body_clean", "{:.2f}"),
        ("MAE body (noisy)", "mae_body_noisy", "{:.1f}"),
        ("MAE body (clean)", "mae_body_clean", "{:.1f}"),
        ("sharpness", "sharpness", "{:.2f}"),
        ("slice diff", "slice_diff", "{:.2f}"),
        ("slice diff MAE", "slice_diff_mae", "{:.1f}"),
    ]
    lines = ["| recipe | " + " | ".join(c[0] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        "| " + r["recipe"] + " | " + " | ".join("—" if r[k] is None else f.format(r[k]) for _, k, f in columns) + " |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
