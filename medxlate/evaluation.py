"""Evaluate a trained model on a dataset split: per-case CSV, summary JSON, MLflow metrics.

Two protocols: ``default`` (3D SSIM/PSNR/MAE in target units, whole volume and inside the body mask,
with a noise-free ceiling for simulated data) and ``synthrad2025`` (the SynthRAD2025 challenge's
MAE/PSNR/MS-SSIM of a synthetic CT inside the body mask, :func:`medxlate.metrics.synthrad2025`).

An X-ray -> CT (``lift``) model is scored on CT volumes (a prepared dataset's CT role, or a folder of CT
volumes or DICOM tree split as training split it, :func:`lift_ct_source`): each CT (and its body mask)
is resampled onto the model grid and its clean DRRs rendered with the model's view geometry
(:func:`lift_case`), the CT is reconstructed from those views and compared with the CT in HU, plus
the re-projection agreement with the input views (:func:`medxlate.inference.evaluate_lift_case`).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medxlate.anatomy import AnatomyScorer, Segmenter, align_label_columns, anatomy_scorer, by_metric
from medxlate.data import read_dataset
from medxlate.data.ct_source import CtCase, CtSource, read_ct_source
from medxlate.data.roles import orient_dataset
from medxlate.errors import ConfigError, InputDataError
from medxlate.inference import LiftStrategy, Translator, evaluate_lift_case
from medxlate.inference.finite import check_finite_input
from medxlate.io import load_volume
from medxlate.io.atomic import atomic_path, write_bytes_atomic
from medxlate.io.guard import guard_output
from medxlate.metrics import synthrad2025
from medxlate.metrics.anatomy import Overlaps
from medxlate.metrics.summary import finite_case_means, split_reference_constants
from medxlate.metrics.volume import volume_metrics
from medxlate.progress import track
from medxlate.tracking import Tracker
from medxlate.tracking.base import as_params

CEILING_ROLE = "target_noise_free"
PROTOCOLS = ("default", "synthrad2025")
#: Metrics drawn in the report, the first one ranking the worst and best case.
REPORT_METRICS = {"default": ("ssim_body", "psnr_body", "mae_body"), "synthrad2025": ("mae", "psnr", "ms_ssim")}


@dataclass(frozen=True)
class EvaluationResult:
    """Per-case metrics, their means, where they were written, and why an anatomy value is NaN
    (``undefined``: metric -> case -> reason)."""

    per_case: dict[str, dict[str, float]]
    summary: dict[str, float]
    csv_path: Path
    summary_path: Path
    pictures: tuple[Path, ...] = ()
    undefined: dict[str, dict[str, str]] = field(default_factory=dict)


def evaluate(
    checkpoint: str | Path,
    dataset: str | Path,
    out_dir: str | Path,
    split: str = "val",
    tracker: Tracker | None = None,
    device: str = "auto",
    progress: bool = False,
    protocol: str = "default",
    report: bool = False,
    segmenter: Segmenter | None = None,
    labels: str = "labels",
) -> EvaluationResult:
    """Translate every case of a split on its own grid and compare with the real target.

    The dataset's roles are read as the checkpoint's task reads them (an MR -> CT model on a
    CT -> MR dataset translates its MR). Metrics are 3D SSIM/PSNR/MAE in target units, whole volume
    and inside the body mask, with ``data_range`` = the reference volume's max - min (a CT target:
    the CT window width). The model's own output is scored: the task's background outside the
    input's body, which translations write (:mod:`medxlate.inference.background`), is not applied.
    A metric that is NaN/inf for a case (e.g. an
    empty body mask) is left out of the means with a warning, listed under ``excluded`` in the
    summary JSON and written as an empty cell in the CSV; it never appears as ``nan``. When a case
    carries a noise-free target
    (simulated data), the same metrics of noise-free vs. real target are reported as ``ceiling_*``:
    the best any model can score, since noise is unpredictable.

    Anatomy (:mod:`medxlate.anatomy`, docs/anatomy_evaluation.md): with the default protocol, a model whose
    target is CT also gets
    Dice and HD95 (mm) of bone (>= 250 HU) and air (<= -400 HU) inside the body mask (``dice_bone``,
    ``hd95_bone``, ``dice_air``, ``hd95_air``); with a ``segmenter``, Dice and HD95 per label of the
    segmenter's labels of the synthetic image against each case's label map (``dice_label_<id>``,
    ``hd95_label_<id>``). A structure empty in one image scores Dice 0 and HD95 NaN, empty in both NaN
    and NaN; the reason of each NaN is listed under ``undefined`` in the summary JSON.

    Args:
        checkpoint: Trained medxlate checkpoint.
        dataset: Prepared dataset folder; for an X-ray -> CT model also a folder of CT volumes or a
            DICOM tree (:func:`lift_ct_source`: ``train`` and ``val`` splits as in training).
        out_dir: Where ``metrics_per_case.csv`` and ``metrics_summary.json`` are written.
        split: Which split to evaluate.
        tracker: If given, the summary means are logged as single-value metrics
            ``z_eval/<split>/<name>`` (:func:`summary_prefix`), except the reference constants
            ``data_range`` and ``ceiling_*``, logged as params of that name; the per-case values as the table
            ``evaluation/<split>_<protocol>_per_case.json`` and the files as artifacts.
        device: Inference device.
        progress: Show progress over the cases on stderr (a bar on a terminal, else a line per case).
        protocol: ``default`` or ``synthrad2025`` (synthetic CT vs. real CT in HU, inside the mask;
            metrics ``mae``, ``psnr``, ``ms_ssim`` exactly as the challenge computes them).
        report: Also draw ``metrics_boxplots.png`` (one box plot per metric, every case a point)
            and ``worst_best_cases.png`` (axial/coronal/sagittal of the worst and best case:
            source | synthetic | real | difference), logged as artifacts with the tracker.
        segmenter: Command template with ``{input}`` and ``{output}``, or a callable
            ``MetaTensor -> label map``, that segments the synthetic image (not for X-ray -> CT models).
        labels: Dataset role of each case's reference label map (used with ``segmenter``).

    Returns:
        The evaluation result (the summary JSON also holds each metric's standard deviation).

    Raises:
        ConfigError: if the protocol is unknown, or the segmenter is malformed, not found or given for
            an X-ray -> CT model.
        InputDataError: if a segmenter is given and a case has no ``labels`` file or the segmenter fails,
            if the split has no case, a source holds NaN/inf voxels, or
            (``synthrad2025``) a target is not a CT in HU, a mask is empty or a prediction is not on
            the target's grid.
        NonFiniteError: if the model produces NaN/inf for a case.
        OutputError: if ``out_dir`` is or lies inside the checkpoint or the dataset.
    """
    guard_output(out_dir, [checkpoint, dataset], "evaluation output folder")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"evaluate: unknown protocol {protocol!r}; available: {', '.join(PROTOCOLS)}")
    translator = Translator.from_checkpoint(checkpoint, device=device)
    lifted = isinstance(translator.strategy, LiftStrategy)
    structures = protocol == "default" and translator.preprocessing.task.target_modality == "CT"
    anatomy = anatomy_scorer(structures, segmenter, labels, lifted)
    data: Any = lift_ct_source(translator, dataset) if lifted else read_dataset(dataset)
    cases: list[Any] = data.split(split) if lifted else orient_dataset(data, translator.preprocessing.task).split(split)
    if not cases:
        found = sorted(name for name, members in data.splits.items() if members) if lifted else []
        hint = f"; splits with cases: {', '.join(found)}" if found else ""
        raise InputDataError(f"{data.root}: split '{split}' has no case to evaluate{hint}")
    per_case: dict[str, dict[str, float]] = {}
    reasons: dict[str, dict[str, str]] = {}
    label_ids: set[int] = set()
    for case in track(cases, desc=f"evaluate {split}", unit="case", enabled=progress):
        if lifted:
            per_case[case.id], found = _score_lift_case(translator, case, protocol, anatomy)[2:]
        else:
            per_case[case.id], found = _score_case(translator, case, protocol, anatomy)
        per_case[case.id].update(found[0].values)
        reasons.update({case.id: found[0].reasons} if found[0].reasons else {})
        label_ids |= found[1]
    if anatomy.segmenter is not None:
        align_label_columns(per_case, reasons, label_ids)
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
    undefined = by_metric(reasons)
    if undefined:  # why an anatomy metric is undefined (NaN): metric -> case -> reason
        content["undefined"] = undefined
    write_bytes_atomic(summary_path, (json.dumps(content, indent=2) + "\n").encode("utf-8"))
    pictures = _draw_report(translator, {c.id: c for c in cases}, per_case, protocol, out) if report else ()
    if tracker is not None:
        _log_evaluation(tracker, per_case, summary, split, protocol, (csv_path, summary_path, *pictures))
    return EvaluationResult(per_case, summary, csv_path, summary_path, pictures, undefined)


def _score_case(
    translator: Translator, case: Any, protocol: str, anatomy: AnatomyScorer
) -> tuple[dict[str, float], tuple[Overlaps, set[int]]]:
    """Translate a case's source on its own grid and score it against its target: ``(metrics, anatomy)``."""
    source, target = load_volume(case.source), load_volume(case.target)
    for path, volume in ((case.source, source), (case.target, target)):
        check_finite_input(volume, str(path))
    mask = load_volume(case.mask)[0] > 0.5 if case.mask else torch.ones(target.shape[1:], dtype=torch.bool)
    synthetic = translator(source, fill_background=False)  # the model's own output
    prediction = synthetic[0].as_tensor()
    found = anatomy.score(synthetic, target[0].as_tensor(), mask, case.files, f"case '{case.id}'")
    if protocol == "synthrad2025":
        try:
            return synthrad2025(prediction, target[0].as_tensor(), mask), found
        except InputDataError as e:
            raise InputDataError(f"{case.target}: {e}") from e
    values = volume_metrics(prediction, target[0].as_tensor(), mask, translator.preprocessing.target_data_range)
    if CEILING_ROLE in case.files:
        ceiling = volume_metrics(load_volume(case.files[CEILING_ROLE])[0].as_tensor(), target[0].as_tensor(), mask)
        values.update({f"ceiling_{k}": v for k, v in ceiling.items() if k != "data_range"})
    return values, found


def lift_ct_source(translator: Translator, dataset: str | Path) -> CtSource:
    """The CT cases an X-ray -> CT model is scored on: a prepared dataset's CT role, or a folder of CT
    volumes split exactly as the model's training split it (the checkpoint config's
    ``xray.val_fraction`` and ``xray.split_seed``).

    Raises:
        InputDataError: see :func:`medxlate.data.ct_source.read_ct_source`.
    """
    return read_ct_source(
        dataset, float(_xray_setting(translator, "val_fraction")), int(_xray_setting(translator, "split_seed"))
    )


def _xray_setting(translator: Translator, name: str) -> Any:
    """An ``xray`` setting of the checkpoint's config (the config's default where the checkpoint has none)."""
    from medxlate.config.schema import XrayConfig

    xray = translator.config.get("xray") if isinstance(translator.config.get("xray"), dict) else {}
    return xray.get(name, XrayConfig.model_fields[name].default)


def lift_case(translator: Translator, case: CtCase) -> Any:
    """A CT (and body mask) on an X-ray -> CT model's grid, with its clean views.

    The smallest field coverage is the checkpoint config's ``xray.min_coverage`` (the config's
    default, 0.5, when it has none).

    Args:
        translator: A ``lift`` Translator.
        case: The CT case (:func:`lift_ct_source`).

    Returns:
        The :class:`medxlate.xray.cases.LiftCase`.

    Raises:
        InputDataError: naming the file: the CT holds NaN/inf voxels, is not a 3D volume or covers too
            little of the model's field, or the model is not an X-ray -> CT model.
    """
    from medxlate.xray.cases import make_case

    strategy = translator.strategy
    if not isinstance(strategy, LiftStrategy):
        raise InputDataError(f"lift_case: the model's inference is '{strategy.kind}'; expected X-ray -> CT ('lift')")
    ct, mask = case.load()
    check_finite_input(ct, case.label)
    coverage = float(_xray_setting(translator, "min_coverage"))
    try:
        return make_case(ct, strategy.geometries(), strategy.size, strategy.fov_mm, coverage, mask)
    except InputDataError as e:
        raise InputDataError(f"{case.label}: {e} (xray.min_coverage {coverage} of the checkpoint)") from e


def _score_lift_case(
    translator: Translator, case: CtCase, protocol: str, anatomy: AnatomyScorer | None = None
) -> tuple[Any, Any, dict[str, float], tuple[Overlaps, set[int]]]:
    """Reconstruct a case's CT from its DRRs: ``(lift case, predicted CT in HU, metrics, anatomy)``."""
    made = lift_case(translator, case)
    predicted, values = evaluate_lift_case(
        translator.generator,
        made,
        translator.strategy,  # type: ignore[arg-type]
        translator.preprocessing,
        translator.device,
        translator.bf16,
        label=f"case '{case.id}'",
    )
    if protocol == "synthrad2025":
        values = synthrad2025(predicted[0].as_tensor(), made.ct_hu[0].as_tensor(), made.mask[0])
    found: tuple[Overlaps, set[int]] = (Overlaps(), set())
    if anatomy is not None:
        found = anatomy.score(predicted, made.ct_hu[0].as_tensor(), made.mask[0], {}, f"case '{case.id}'")
    return made, predicted, values, found


def summary_prefix(split: str, protocol: str) -> str:
    """Metric-name prefix of an evaluation's summary values: ``z_eval/<split>/`` (``.../<protocol>/``
    unless default), so they sort after the ``train/`` and ``val/`` curves in MLflow's listings."""
    return f"z_eval/{split}/" if protocol == "default" else f"z_eval/{split}/{protocol}/"


def _log_evaluation(
    tracker: Tracker,
    per_case: dict[str, dict[str, float]],
    summary: dict[str, float],
    split: str,
    protocol: str,
    files: tuple[Path, ...],
) -> None:
    """Summary means as single-value metrics, the per-case values as a table artifact, the files."""
    prefix = summary_prefix(split, protocol)
    scores, constants = split_reference_constants(summary)  # data_range, ceiling_*: the data's, not the model's
    tracker.log_metrics({f"{prefix}{k}": v for k, v in scores.items()}, step=0)
    if constants:
        tracker.log_params(as_params(constants, prefix))
    names = list(next(iter(per_case.values())))
    columns: dict[str, list[object]] = {"case": list(per_case)}
    for name in names:  # a non-finite value becomes null (JSON has no NaN)
        columns[name] = [value[name] if math.isfinite(value[name]) else None for value in per_case.values()]
    tracker.log_table(columns, f"evaluation/{split}_{protocol}_per_case.json")
    for path in files:
        tracker.log_artifact(path, "evaluation")


def _draw_report(
    translator: Translator,
    cases: dict[str, Any],
    per_case: dict[str, dict[str, float]],
    protocol: str,
    out: Path,
) -> tuple[Path, ...]:
    """Box plots of the headline metrics and a montage of the worst and best case (re-translated).

    For an X-ray -> CT model the montage has no source column (the source is a set of 2D views):
    synthetic | real | difference on the model grid.
    """
    from medxlate import report

    metrics = REPORT_METRICS[protocol]
    boxplots = report.write_boxplots(per_case, metrics, out / "metrics_boxplots.png", f"{protocol} metrics per case")
    worst, best = report.worst_and_best(per_case, metrics[0])
    volumes = []
    for label, case_id in [("worst", c) for c in worst] + [("best", c) for c in best]:
        title = f"{label} by {metrics[0]}:"
        if isinstance(translator.strategy, LiftStrategy):
            volumes.append(_lift_case_volumes(translator, cases[case_id], title))
        else:
            volumes.append(_case_volumes(translator, cases[case_id], title))
    sources = [v.source.ravel() for v in volumes if v.source is not None]
    both = np.concatenate(sources) if sources else np.zeros(1)
    real = np.concatenate([v.real.ravel() for v in volumes])
    source_window = (float(np.percentile(both, 1)), float(np.percentile(both, 99)))
    target_window = (float(np.percentile(real, 1)), float(np.percentile(real, 99)))
    montage = report.write_montage(volumes, out / "worst_best_cases.png", source_window, target_window)
    return boxplots, montage


def _case_volumes(translator: Translator, case: Any, label: str) -> Any:
    """A translated case as RAS arrays for the montage."""
    from monai.data.utils import affine_to_spacing
    from monai.transforms import Orientation

    from medxlate import report
    from medxlate.transforms.spatial import RAS_LABELS

    to_ras = Orientation(axcodes="RAS", labels=RAS_LABELS)
    source = to_ras(load_volume(case.source))
    target = to_ras(load_volume(case.target))
    synthetic = to_ras(translator(load_volume(case.source), fill_background=False))  # as scored
    mask = to_ras(load_volume(case.mask)) if case.mask else torch.ones_like(target)
    spacing = tuple(float(v) for v in affine_to_spacing(target.affine, r=3))
    arrays = [np.asarray(v[0].detach().cpu().numpy(), dtype=np.float64) for v in (source, synthetic, target, mask)]
    return report.CaseVolumes(case.id, *arrays, spacing=spacing, label=label)  # type: ignore[arg-type]


def _lift_case_volumes(translator: Translator, case: CtCase, label: str) -> Any:
    """A reconstructed case on the model grid (RAS, isotropic) for the montage, without a source."""
    from medxlate import report

    made, predicted = _score_lift_case(translator, case, "default")[:2]
    arrays = [np.asarray(v[0].detach().cpu().numpy(), dtype=np.float64) for v in (predicted, made.ct_hu, made.mask)]
    spacing = (translator.strategy.spacing_mm,) * 3  # type: ignore[union-attr]
    return report.CaseVolumes(case.id, None, *arrays, spacing=spacing, label=label)


def _write_csv(path: Path, per_case: dict[str, dict[str, float]], names: list[str]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", *names])
        for case_id, values in per_case.items():
            writer.writerow([case_id, *(f"{values[n]:.6g}" if math.isfinite(values[n]) else "" for n in names)])
