"""Air and window seams of a 3D model's translations: MONAI's floored Gaussian vs medxlate's blending.

For each case of a split of a prepared dataset, with a trained 3D (``sliding_window``) checkpoint:

* ``air``: the written translation (:class:`~medxlate.inference.Translator`, the task's background
  outside the input's body) and the generator's own output (``fill_background=False``) outside the
  dataset's body mask, in target units: mean, std, max |value - background|, share of voxels at
  the background (also 2 voxels off the body: the two masks differ on the rim); the real target's
  air for comparison; ``--before`` adds a translation written by an older medxlate (a NIfTI file
  on the case's grid, e.g. the demo's ``translated/*.nii.gz``).
* ``seams`` and ``checkerboard`` (model units, on the model's grid, in the input's air, where the
  body's texture cannot hide them), for the blending medxlate uses
  (:func:`medxlate.inference.strategy.gaussian_weights`) and for MONAI's
  ``compute_importance_map`` (floored at 1e-3), run in the same process:

  - ``seam ratio``: per axis, mean |difference| of neighbouring voxels across a window's first or
    last plane inside the volume, divided by the same away from those planes (1: no seam);
  - ``checkerboard``: amplitude of the period-2 component along each axis and of the 3D
    checkerboard ``(-1)**(i + j + k)``, which transposed convolutions leave on a constant input.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.air_seams --checkpoint outputs/ct2mr_3d_demo/train/model.pt \\
        --dataset outputs/ct2mr_3d_demo/dataset [--before old_translation.nii.gz] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data.utils import dense_patch_slices
from scipy import ndimage

from medxlate.data import read_dataset
from medxlate.inference import SlidingWindowStrategy, Translator, build_inferer
from medxlate.inference.background import target_background
from medxlate.io import load_volume


def air_stats(values: np.ndarray, air: np.ndarray, background: float) -> dict[str, float]:
    """Mean, std, max |value - background| and the share of voxels at the background, outside the body."""
    off = np.abs(values[air] - background)
    return {
        "mean": float(values[air].mean()),
        "std": float(values[air].std()),
        "max_abs": float(off.max()),
        "at_background": float((off == 0).mean()),
    }


def border_planes(size: int, roi: int, overlap: float) -> np.ndarray:
    """Boolean ``(size - 1,)``: planes ``i | i+1`` that are a window's first or last plane inside the volume."""
    step = roi if roi >= size else max(int(roi * (1 - overlap)), 1)  # MONAI's scan interval
    planes = np.zeros(max(size - 1, 0), dtype=bool)
    for (window,) in dense_patch_slices((size,), (min(roi, size),), (step,)):
        if window.start > 0:
            planes[window.start - 1] = True
        if window.stop < size:
            planes[window.stop - 1] = True
    return planes


def seam_ratio(output: np.ndarray, air: np.ndarray, strategy: SlidingWindowStrategy) -> dict[str, float]:
    """Per axis: mean |neighbour difference| in air across window borders / away from them."""
    ratios = {}
    for axis, name in enumerate("xyz"):
        size = output.shape[axis]
        planes = border_planes(size, strategy.roi_size[axis], strategy.overlap)
        if not planes.any():
            continue
        diff = np.abs(np.diff(output, axis=axis))
        both = np.take(air, range(size - 1), axis) & np.take(air, range(1, size), axis)
        shape = [1, 1, 1]
        shape[axis] = size - 1
        across = np.broadcast_to(planes.reshape(shape), diff.shape)
        ratios[name] = float(diff[both & across].mean() / diff[both & ~across].mean())
    return ratios


def checkerboard(output: np.ndarray, air: np.ndarray) -> dict[str, float]:
    """Amplitudes of the period-2 components (per axis and the 3D checkerboard) of ``output`` in air."""
    centred = output - output[air].mean()
    index = np.indices(output.shape)
    signs = {name: (-1.0) ** index[axis] for axis, name in enumerate("xyz")}
    signs["xyz"] = (-1.0) ** index.sum(0)
    return {name: float(np.abs((centred * sign)[air].mean())) for name, sign in signs.items()}


def model_grid(translator: Translator, source: Any, monai_map: bool) -> np.ndarray:
    """The generator's output on the model's grid (model units), with medxlate's or MONAI's blending."""
    prep = translator.preprocessing
    unit = prep.source_to_model(source, translator.model_spacing(source)).as_tensor()
    inferer = build_inferer(translator.strategy)
    if monai_map:
        inferer.roi_weight_map = None  # MONAI computes compute_importance_map(..., "gaussian"), floored at 1e-3
    with torch.inference_mode():
        output = inferer(unit[None].to(translator.device), translator.generator)
    return output[0, 0].float().cpu().numpy().astype(np.float64), unit[0].numpy() <= -1.0 + 1e-3


def measure_case(translator: Translator, case: Any, before: Path | None) -> dict[str, Any]:
    """Air, seams and checkerboard of one case (see the module docstring)."""
    source, target = load_volume(case.source), load_volume(case.target)
    body = load_volume(case.mask)[0].numpy() > 0.5
    air = ~body
    far = ~ndimage.binary_dilation(body, np.ones((3, 3, 1), dtype=bool), iterations=2)  # 2 voxels off the rim
    background = target_background(translator.preprocessing)
    written = translator(source)[0].numpy().astype(np.float64)
    raw = translator(source, fill_background=False)[0].numpy().astype(np.float64)
    result: dict[str, Any] = {
        "background": background,
        "air": {
            "written": air_stats(written, air, background),
            "written_2_voxels_off_the_body": air_stats(written, far, background),
            "generator": air_stats(raw, air, background),
            "target": air_stats(target[0].numpy().astype(np.float64), air, background),
        },
    }
    if before is not None:
        result["air"]["before"] = air_stats(load_volume(before)[0].numpy().astype(np.float64), air, background)
    for name, monai_map in (("medxlate", False), ("monai_floored", True)):
        output, input_air = model_grid(translator, source, monai_map)
        result[f"seam_ratio_{name}"] = seam_ratio(output, input_air, translator.strategy)
        result[f"checkerboard_{name}"] = checkerboard(output, input_air)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure every case of ``--split`` and print (and optionally write) the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--before", type=Path, default=None, help="an older translation of the (single) case")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    translator = Translator.from_checkpoint(args.checkpoint, device="cpu")
    if not isinstance(translator.strategy, SlidingWindowStrategy):
        parser.error(f"{args.checkpoint}: inference '{translator.strategy.kind}'; expected a 3D sliding-window model")
    cases = read_dataset(args.dataset).split(args.split)
    results = {case.id: measure_case(translator, case, args.before if len(cases) == 1 else None) for case in cases}
    text = json.dumps(results, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()
