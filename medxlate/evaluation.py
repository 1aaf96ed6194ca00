"""Evaluate a trained model on a prepared dataset split: per-case CSV, summary JSON, MLflow metrics.

Two protocols: ``default`` (3D SSIM/PSNR/MAE in target units, whole volume and inside the body mask,
with a noise-free ceiling for simulated data) and ``synthrad2025`` (the SynthRAD2025 challenge's
MAE/PSNR/MS-SSIM of a synthetic CT inside the body mask, :func:`medxlate.metrics.synthrad2025`).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from medxlate.data import read_dataset
from medxlate.errors import ConfigError, InputDataError
from medxlate.inference import Translator
from medxlate.inference.finite import check_finite_input
from medxlate.io import load_volume
from medxlate.io.atomic import atomic_path, write_bytes_atomic
from medxlate.metrics import synthrad2025
from medxlate.metrics.summary import finite_case_means
from medxlate.tracking import Tracker
from medxlate.training.validation import volume_metrics

CEILING_ROLE = "target_noise_free"
PROTOCOLS = ("default", "synthrad2025")


@dataclass(frozen=True)
class EvaluationResult:
    """Per-case metrics, their means, and where they were written."""

    per_case: dict[str, dict[str, float]]
    summary: dict[str, float]
    csv_path: Path
    summary_path: Path


def evaluate(
    checkpoint: str | Path,
    dataset: str | Path,
    out_dir: str | Path,
    split: str = "val",
    tracker: Tracker | None = None,
    device: str = "auto",
    progress: bool = False,
    protocol: str = "default",
) -> EvaluationResult:
    """Translate every case of a split on its own grid and compare with the real target.

    Metrics are 3D SSIM/PSNR/MAE in target units, whole volume and inside the body mask, with
    ``data_range`` = the reference volume's max - min. A metric that is NaN/inf for a case (e.g. an
    empty body mask) is left out of the means with a warning, listed under ``excluded`` in the
    summary JSON and written as an empty cell in the CSV; it never appears as ``nan``. When a case
    carries a noise-free target
    (simulated data), the same metrics of noise-free vs. real target are reported as ``ceiling_*``:
    the best any model can score, since noise is unpredictable.

    Args:
        checkpoint: Trained medxlate checkpoint.
        dataset: Prepared dataset folder.
        out_dir: Where ``metrics_per_case.csv`` and ``metrics_summary.json`` are written.
        split: Which split to evaluate.
        tracker: If given, summary metrics are logged as ``eval/<name>`` and the files as artifacts.
        device: Inference device.
        progress: Show a progress bar over the cases (tqdm, on stderr).
        protocol: ``default`` or ``synthrad2025`` (synthetic CT vs. real CT in HU, inside the mask;
            metrics ``mae``, ``psnr``, ``ms_ssim`` exactly as the challenge computes them).

    Returns:
        The evaluation result (the summary JSON also holds each metric's standard deviation).

    Raises:
        ConfigError: if the protocol is unknown.
        InputDataError: if the split has no case, a source holds NaN/inf voxels, or
            (``synthrad2025``) a target is not a CT in HU, a mask is empty or a prediction is not on
            the target's grid.
        NonFiniteError: if the model produces NaN/inf for a case.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"evaluate: unknown protocol {protocol!r}; available: {', '.join(PROTOCOLS)}")
    data = read_dataset(dataset)
    cases = data.split(split)
    if not cases:
        raise InputDataError(f"{data.root}: split '{split}' has no case to evaluate")
    translator = Translator.from_checkpoint(checkpoint, device=device)
    per_case: dict[str, dict[str, float]] = {}
    for case in tqdm(cases, desc=f"evaluate {split}", unit="case", disable=not progress, file=sys.stderr):
        source, target = load_volume(case.source), load_volume(case.target)
        for path, volume in ((case.source, source), (case.target, target)):
            check_finite_input(volume, str(path))
        mask = load_volume(case.mask)[0] > 0.5 if case.mask else torch.ones(target.shape[1:], dtype=torch.bool)
        prediction = translator(source)[0].as_tensor()
        if protocol == "synthrad2025":
            try:
                per_case[case.id] = synthrad2025(prediction, target[0].as_tensor(), mask)
            except InputDataError as e:
                raise InputDataError(f"{case.target}: {e}") from e
            continue
        values = volume_metrics(prediction, target[0].as_tensor(), mask)
        if CEILING_ROLE in case.files:
            ceiling = volume_metrics(load_volume(case.files[CEILING_ROLE])[0].as_tensor(), target[0].as_tensor(), mask)
            values.update({f"ceiling_{k}": v for k, v in ceiling.items() if k != "data_range"})
        per_case[case.id] = values
    names = list(next(iter(per_case.values())))
    reduced = finite_case_means(per_case, f"evaluation of split '{split}'")
    summary = reduced.means
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, summary_path = out / "metrics_per_case.csv", out / "metrics_summary.json"
    _write_csv(csv_path, per_case, names)
    spread = {name: float(np.std([v[name] for v in per_case.values() if math.isfinite(v[name])])) for name in summary}
    content = {
        "split": split,
        "protocol": protocol,
        "cases": len(per_case),
        "mean": summary,
        "std": spread,
        "excluded": reduced.excluded,
    }
    write_bytes_atomic(summary_path, (json.dumps(content, indent=2) + "\n").encode("utf-8"))
    if tracker is not None:
        prefix = "eval/" if protocol == "default" else f"eval/{protocol}/"
        tracker.log_metrics({f"{prefix}{k}": v for k, v in summary.items()}, step=0)
        tracker.log_artifact(csv_path, "evaluation")
        tracker.log_artifact(summary_path, "evaluation")
    return EvaluationResult(per_case=per_case, summary=summary, csv_path=csv_path, summary_path=summary_path)


def _write_csv(path: Path, per_case: dict[str, dict[str, float]], names: list[str]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", *names])
        for case_id, values in per_case.items():
            writer.writerow([case_id, *(f"{values[n]:.6g}" if math.isfinite(values[n]) else "" for n in names)])
