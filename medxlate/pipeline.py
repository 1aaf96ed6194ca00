"""Run a pipeline recipe: prepare -> train -> evaluate -> translate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medxlate.config import load_config, read_yaml
from medxlate.config.pipeline import PipelineConfig
from medxlate.errors import ConfigError, InputDataError

logger = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """Paths and numbers a pipeline run produced (filled stage by stage)."""

    dataset: Path | None = None
    checkpoint: Path | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    rank: int = 0
    validation: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, float] = field(default_factory=dict)
    montage: Path | None = None
    translated: list[Path] = field(default_factory=list)


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline YAML.

    Raises:
        ConfigError: naming the key and the problem.
    """
    raw = read_yaml(path)
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as e:
        lines = [f"'{'.'.join(map(str, err['loc']))}': {err['msg']}" for err in e.errors()]
        raise ConfigError(f"{path}: invalid pipeline:\n  " + "\n  ".join(lines)) from e


def run_pipeline(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    report: Callable[[str], None] = logger.info,
) -> PipelineResult:
    """Run the stages of a pipeline recipe in order.

    Args:
        path: Pipeline YAML.
        overrides: Extra dotted-key overrides for the experiment config (win over the recipe's).
        report: Called with one line per finished stage.

    Returns:
        What each stage produced.
    """
    from medxlate.training.runtime import start_runtime, stop_runtime

    recipe = load_pipeline(path)
    out = Path(recipe.output_dir)
    dataset_dir, train_dir = out / "dataset", out / "train"
    cfg = load_config(
        recipe.config,
        {
            "data.dataset": str(dataset_dir),
            "train.output_dir": str(train_dir),
            **recipe.overrides,
            **(overrides or {}),
        },
    )
    result = PipelineResult(dataset=Path(cfg.data.dataset))
    if "train" in recipe.stages:  # fail before preparing anything if training would be refused
        from medxlate.training.outputs import check_fresh_output

        check_fresh_output(out / "train", cfg.train.resume, cfg.train.overwrite, cfg.data.cache_dir)
    # Under torchrun every stage but training runs on rank 0 while the other ranks wait.
    runtime = start_runtime(cfg.train.device, cfg.data.batch_size, cfg.train.dist_timeout_s)
    try:
        for stage in recipe.stages:
            if stage == "train" or runtime.is_main:
                _run_stage(stage, recipe, cfg, result, out, report)
            runtime.barrier()
    finally:
        stop_runtime(runtime)
    result.rank = runtime.rank
    result.tracking_uri = _tracking_uri(cfg) if runtime.is_main else None
    return result


def _run_stage(
    stage: str, recipe: Any, cfg: Any, result: PipelineResult, out: Path, report: Callable[[str], None]
) -> None:
    """Run one pipeline stage, recording what it produced in ``result``."""
    from medxlate.api import train
    from medxlate.config import load_prepare_config
    from medxlate.data import fingerprint_dataset, run_prepare

    dataset_dir, train_dir = out / "dataset", out / "train"
    if stage == "prepare":
        run_prepare(recipe.input, dataset_dir, load_prepare_config(recipe.prepare_config), id_map=recipe.id_map)
        fingerprint_dataset(dataset_dir)
        report(f"prepare: dataset written to {dataset_dir}")
    elif stage == "train":
        trained = train(cfg)
        result.checkpoint, result.run_id = trained.checkpoint, trained.run_id
        result.validation, result.montage = trained.metrics, trained.montage
        if trained.rank == 0:
            report(f"train: checkpoint {trained.checkpoint}")
    elif stage == "evaluate":
        result.evaluation = _evaluate(
            cfg,
            _checkpoint(result, train_dir),
            Path(cfg.data.dataset),
            out / "evaluation",
            result.run_id,
            recipe.evaluate_protocol,
        )
        report(f"evaluate: {out / 'evaluation' / 'metrics_per_case.csv'}")
    elif stage == "translate":
        result.translated = _translate(
            _checkpoint(result, train_dir), Path(cfg.data.dataset), out / "translated", recipe.translate_split
        )
        report(f"translate: {len(result.translated)} synthetic volume(s) in {out / 'translated'}")


def _checkpoint(result: PipelineResult, train_dir: Path) -> Path:
    checkpoint = result.checkpoint or train_dir / "last.pt"
    if not checkpoint.is_file():
        raise InputDataError(f"{checkpoint}: no checkpoint to use (run the train stage first)")
    return checkpoint


def _evaluate(
    cfg: Any, checkpoint: Path, dataset: Path, out_dir: Path, run_id: str | None, protocol: str = "default"
) -> dict[str, float]:
    from medxlate.checkpoint import load_checkpoint
    from medxlate.evaluation import evaluate
    from medxlate.tracking import make_tracker

    tracker = None
    if run_id is None:  # train stage not run in this pipeline: the checkpoint knows its run
        run_id = load_checkpoint(checkpoint).get("mlflow_run_id")
    if cfg.tracking.backend == "mlflow" and run_id:
        tracker = make_tracker("mlflow", cfg.tracking.tracking_uri)
        tracker.start(cfg.experiment_name, cfg.name, {}, {}, resume_run_id=run_id)
    try:
        result = evaluate(
            checkpoint,
            dataset,
            out_dir,
            split="val",
            tracker=tracker,
            device=cfg.train.device,
            report=True,
            protocol=protocol,
        )
        return result.summary
    finally:
        if tracker is not None:
            tracker.end()


def _translate(checkpoint: Path, dataset: Path, out_dir: Path, split: str) -> list[Path]:
    from medxlate.data import read_dataset
    from medxlate.data.roles import orient_dataset
    from medxlate.inference import LiftStrategy, Translator

    translator = Translator.from_checkpoint(checkpoint)
    if isinstance(translator.strategy, LiftStrategy):
        return _translate_radiographs(translator, dataset, out_dir, split)
    modality = translator.target_modality.lower()
    data = orient_dataset(read_dataset(dataset), translator.preprocessing.task)
    return [
        translator.translate_file(case.source, out_dir / f"{case.id}_synthetic_{modality}.nii.gz")
        for case in data.split(split)
    ]


def _translate_radiographs(translator: Any, dataset: Path, out_dir: Path, split: str) -> list[Path]:
    """X-ray -> CT: each case's clean DRRs written as CR DICOM radiographs (``radiographs/``, see
    :mod:`medxlate.xray.radiograph_io`), then reconstructed from those files as a real radiograph
    would be (``<case>_synthetic_ct.nii.gz`` on the model's documented grid). ``dataset`` is a
    prepared dataset or a folder of CT volumes (split as training split it)."""
    from medxlate.evaluation import lift_case, lift_ct_source
    from medxlate.xray.radiograph_io import write_case_radiographs

    geometries = translator.strategy.geometries()
    written = []
    for case in lift_ct_source(translator, dataset).split(split):
        made = lift_case(translator, case)
        files = write_case_radiographs(made.ct_hu, made.ct_hu.affine, geometries, out_dir / "radiographs", case.id)
        written.append(translator.translate_radiographs(files, out_dir / f"{case.id}_synthetic_ct.nii.gz"))
    return written


def _tracking_uri(cfg: Any) -> str | None:
    if cfg.tracking.backend != "mlflow":
        return None
    import mlflow

    if cfg.tracking.tracking_uri:
        return str(cfg.tracking.tracking_uri)
    return str(mlflow.get_tracking_uri())
