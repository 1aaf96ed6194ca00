"""Rigid vs deformable registration in ``prepare``, scored against a known deformation.

Steps, in one process:

1. build the misaligned variant of the shipped sample (``sample_data/misalign.py``: the training
   slabs' MR moved by a seeded smooth deformation whose field is saved; ``val_1`` left aligned);
2. run ``prepare`` on it with ``registration.method`` ``none``, ``rigid`` and ``deformable`` (every
   other setting at its default; SimpleITK with 1 thread, as prepare's default), each into a fresh
   folder. The transform prepare computes for each case is captured by wrapping
   ``medxlate.data.build.align`` (prepare calls it once per case), so the score is of the very
   transform that resampled the stored target, and its time is the registration's time per case;
3. target registration error per case: ``|T_est(x) - T_true(x)|`` (mm) over the voxels ``x`` of the
   case's body mask whose true position ``T_true(x) = x + d(x)`` lies inside the MR's grid (elsewhere
   the MR shows nothing to register); ``T_true`` is the saved field for training slabs and the
   identity for ``val_1``. Mean and 95th percentile pooled over the training slabs' voxels.

Usage (from the repository root)::

    python -m benchmarks.registration [--out benchmarks/results/registration.json] [--seed 2024]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medxlate.config.prepare import PrepareConfig, RegistrationConfig
from medxlate.data import build
from medxlate.data.prepare import run_prepare
from medxlate.data.registration import to_sitk

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("none", "rigid", "deformable")
LPS = np.array([-1.0, -1.0, 1.0])


def _misalign_module() -> Any:
    sys.path.insert(0, str(ROOT / "sample_data"))
    import misalign

    return misalign


class Recorder:
    """Wraps ``align``: keeps each call's source affine, transform, record and seconds."""

    def __init__(self, align: Any) -> None:
        self.align, self.calls = align, []

    def __call__(self, source: Any, target: Any, cfg: RegistrationConfig) -> Any:
        start = time.perf_counter()
        alignment = self.align(source, target, cfg)
        seconds = time.perf_counter() - start
        self.calls.append({"source": source, "alignment": alignment, "seconds": seconds})
        return alignment


def estimated_field(source: Any, transform: Any) -> np.ndarray:
    """The transform as a displacement field (X, Y, Z, 3) on the source grid, RAS mm."""
    import SimpleITK as sitk

    fixed = to_sitk(source)
    field = sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, fixed.GetSize(), fixed.GetOrigin(), fixed.GetSpacing(), fixed.GetDirection()
    )
    return sitk.GetArrayFromImage(field).transpose(2, 1, 0, 3) * LPS


def residuals(variant: Path, case: dict[str, Any], estimated: np.ndarray) -> np.ndarray:
    """|T_est - T_true| (mm) over body voxels whose true position lies inside the MR grid."""
    mask_img = nib.load(str(variant / case["files"]["mask"]))
    body = np.asarray(mask_img.dataobj) > 0
    truth = np.zeros(estimated.shape)
    if "misalignment" in case:
        truth = np.asarray(nib.load(str(variant / case["misalignment"]["field"])).dataobj)[:, :, :, 0, :]
    shape, affine = body.shape, mask_img.affine
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).astype(np.float64)
    landed = index + truth @ np.linalg.inv(affine[:3, :3]).T  # true position, in voxel indices
    inside = ((landed > -0.5) & (landed < np.array(shape) - 0.5)).all(axis=-1)
    return np.linalg.norm(estimated - truth, axis=-1)[body & inside]


def _case_of(source: Any, cases: list[dict[str, Any]]) -> dict[str, Any]:
    affine = np.asarray(source.affine, dtype=np.float64)
    return next(c for c in cases if np.allclose(np.asarray(c["affine"]), affine, atol=1e-3))


def run_method(method: str, variant: Path, cases: list[dict[str, Any]], work: Path) -> list[dict[str, Any]]:
    """Prepare the variant with one registration method; return one row per case."""
    recorder = Recorder(build.align)
    build.align = recorder
    try:
        start = time.perf_counter()
        run_prepare(variant, work / method, PrepareConfig(registration=RegistrationConfig(method=method)))
        total = time.perf_counter() - start
    finally:
        build.align = recorder.align
    stored = {c["registration"]["value"]: c for c in json.loads((work / method / "dataset.json").read_text())["cases"]}
    rows = []
    for call in recorder.calls:
        case = _case_of(call["source"], cases)
        error = residuals(variant, case, estimated_field(call["source"], call["alignment"].transform))
        record = call["alignment"].record
        if record["value"] not in stored:
            raise RuntimeError(f"{case['id']}: prepare recorded another metric than the captured alignment")
        rows.append(
            {
                "method": method,
                "case": case["id"],
                "split": case["split"],
                "registration_seconds": round(call["seconds"], 2),
                "prepare_seconds_per_case": round(total / len(recorder.calls), 2),
                "tre_mean_mm": round(float(error.mean()), 3),
                "tre_p95_mm": round(float(np.percentile(error, 95)), 3),
                "tre_max_mm": round(float(error.max()), 3),
                "voxels": int(error.size),
                "_residuals": error,
                "record": {k: v for k, v in record.items() if k != "matrix"},
            }
        )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method, over the training slabs: pooled mean/p95 residual and mean seconds per case."""
    out = {}
    for method in METHODS:
        train = [r for r in rows if r["method"] == method and r["split"] == "train"]
        pooled = np.concatenate([r["_residuals"] for r in train])
        out[method] = {
            "mean_mm": round(float(pooled.mean()), 3),
            "p95_mm": round(float(np.percentile(pooled, 95)), 3),
            "seconds_per_case": round(float(np.mean([r["registration_seconds"] for r in train])), 2),
            "prepare_seconds_per_case": train[0]["prepare_seconds_per_case"],
        }
    return out


def _sitk_version() -> str:
    import SimpleITK as sitk

    return sitk.Version.VersionString()


def main(argv: list[str] | None = None) -> int:
    """Build the variant, prepare it three ways, score, write the JSON; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "registration.json")
    parser.add_argument("--seed", type=int, default=None, help="seed of the misaligned variant (default 2024)")
    args = parser.parse_args(argv)
    misalign = _misalign_module()
    seed = misalign.DEFAULT_SEED if args.seed is None else args.seed
    with tempfile.TemporaryDirectory() as tmp:
        variant, work = Path(tmp) / "variant", Path(tmp) / "prepared"
        start = time.perf_counter()
        misalign.build_misaligned(misalign.SAMPLE, variant, seed)
        build_seconds = time.perf_counter() - start
        cases = json.loads((variant / "manifest.json").read_text())["cases"]
        rows = [row for method in METHODS for row in run_method(method, variant, cases, work)]
    result = {
        "command": "python -m benchmarks.registration" + (f" --seed {seed}" if args.seed is not None else ""),
        "variant": {"seed": seed, "build_seconds": round(build_seconds, 1)},
        "score": "TRE = |T_est(x) - T_true(x)|, body voxels whose true position is inside the MR grid; "
        "training slabs pooled",
        "summary": summarise(rows),
        "cases": [{k: v for k, v in r.items() if k != "_residuals"} for r in rows],
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
            "note": "shared 2-core container (other jobs running); SimpleITK 1 thread",
            "platform": platform.platform(),
            "simpleitk": _sitk_version(),
        },
    }
    result["registration"] = {k: result["summary"]["deformable"][k] for k in ("mean_mm", "p95_mm", "seconds_per_case")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for method, numbers in result["summary"].items():
        print(f"{method:>10}: {numbers}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
