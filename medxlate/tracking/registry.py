"""MLflow Model Registry: a trained checkpoint as a registered pyfunc model with a signature.

The pyfunc model is logged as code (:mod:`medxlate.tracking.pyfunc_model`, nothing pickled) and carries
the medxlate model package (:mod:`medxlate.package`: checkpoint, ``model.json``, ``MODEL_CARD.md``,
``SHA256SUMS``, exactly what ``medxlate export`` writes) as its one artifact, ``package``; loading it (or calling
``Translator.from_mlflow("models:/NAME/VERSION")`` / ``"models:/NAME@alias"``) rebuilds the generator
and its preprocessing exactly as :meth:`~medxlate.inference.Translator.from_checkpoint` does.
``predict`` takes a ``(1, X, Y, Z)`` float32 array in source units on an identity (RAS, 1 mm) grid
and returns the translated ``(1, X, Y, Z)`` float32 array in target units; use ``Translator`` for
geometry-aware inference on files. An X-ray -> CT model (``lift`` strategy) takes its ``(V, S, S)``
views in the model's [-1, 1] (DRRs, or radiographs mapped with :func:`medxlate.xray.to_detector_domain`
then ``2x - 1``) and returns the ``(1, S, S, S)`` CT in HU on its documented grid. Each registered version
carries a description (task, direction, validation metrics, run) and ``medxlate.*`` tags.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

ARTIFACT_PATH = "translator"
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")
#: Validation metrics named in a version's description and tags (those the checkpoint has, in this order).
HEADLINE_METRICS = ("ssim_body", "psnr_body", "mae_body", "ssim", "psnr", "mae", "reprojection_mae")


class TranslatorModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a medxlate checkpoint (loaded on CPU unless CUDA is available)."""

    def load_context(self, context: Any) -> None:
        """Rebuild the Translator from the package artifact (its SHA256SUMS verified)."""
        from medxlate.inference import Translator

        self.translator = Translator.from_checkpoint(context.artifacts["package"])

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        """Translate one ``(1, X, Y, Z)`` volume given on an identity grid (X-ray -> CT: ``(V, S, S)`` views)."""
        import torch
        from monai.data import MetaTensor

        from medxlate.inference import LiftStrategy

        if isinstance(self.translator.strategy, LiftStrategy):
            views = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
            return self.translator.translate_views(views).as_tensor().cpu().numpy().astype(np.float32)
        volume = MetaTensor(torch.as_tensor(np.asarray(model_input, dtype=np.float32)), affine=torch.eye(4))
        return self.translator(volume).as_tensor().cpu().numpy().astype(np.float32)


def signature(views_in: bool = False) -> Any:
    """``(1, X, Y, Z)`` float32 in, ``(1, X, Y, Z)`` float32 out; ``views_in``: ``(V, S, S)`` views in."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    volume = TensorSpec(np.dtype(np.float32), (1, -1, -1, -1))
    inputs = TensorSpec(np.dtype(np.float32), (-1, -1, -1)) if views_in else volume
    return ModelSignature(inputs=Schema([inputs]), outputs=Schema([volume]))


def register_checkpoint(checkpoint: str | Path, run_id: str, name: str, tracking_uri: str | None = None) -> int:
    """Log ``checkpoint`` as a pyfunc model in run ``run_id`` and register it as ``name``.

    The model's artifact is the checkpoint's model package (licence ``unspecified``; see
    :func:`medxlate.package.export_package`), so a registered version and an exported package are the
    same files.

    Uses ``tracking_uri`` or else the current MLflow tracking URI (the registry lives in the same store).
    The new version gets a description and tags (:func:`version_description`, :func:`version_tags`).

    Returns:
        The new registered model version.
    """
    import monai
    import torch

    from medxlate import __version__

    requirements = [
        f"torch=={torch.__version__.split('+')[0]}",
        f"monai=={monai.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"medxlate=={__version__}",
    ]
    from medxlate.checkpoint import load_checkpoint
    from medxlate.package import export_package

    content = load_checkpoint(checkpoint)
    views_in = (content.get("inference") or {}).get("kind") == "lift"
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as folder, mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        package = export_package(checkpoint, Path(folder) / "package")
        # the signature is given explicitly; an input example would be a whole volume in the store
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        info = mlflow.pyfunc.log_model(
            name=ARTIFACT_PATH,
            python_model=str(MODEL_CODE),  # models from code: no CloudPickle'd object (and no warning about it)
            artifacts={"package": str(package)},
            signature=signature(views_in),
            pip_requirements=requirements,
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    description = version_description(content, run_id, f"models:/{name}/{version}")
    client.update_model_version(name, version, description=description)
    for key, value in version_tags(content).items():
        client.set_model_version_tag(name, version, key, value)
    return int(version)


def _headline(content: dict[str, Any]) -> dict[str, float]:
    metrics = content.get("metrics") or {}
    return {key: float(metrics[key]) for key in HEADLINE_METRICS if isinstance(metrics.get(key), int | float)}


def version_description(content: dict[str, Any], run_id: str, model_uri: str = "models:/NAME/VERSION") -> str:
    """A registered version's description: task and direction, validation metrics, the training run.

    Args:
        content: The loaded checkpoint (its config, modalities, inference strategy, epoch and metrics).
        run_id: The MLflow run that trained it.
        model_uri: The version's URI, shown as what to load.
    """
    source, target = content.get("source_modality", "?"), content.get("target_modality", "?")
    task = ((content.get("config") or {}).get("data") or {}).get("task", "?")
    strategy = (content.get("inference") or {}).get("kind", "?")
    lines = [f"medxlate {source} -> {target} translator (task {task}, inference '{strategy}')."]
    headline = _headline(content)
    if headline:
        shown = ", ".join(f"{key}={value:.4g}" for key, value in headline.items())
        lines.append(f"Validation after epoch {content.get('epoch', '?')}: {shown}.")
    lines.append(f"Trained in MLflow run {run_id}; load with Translator.from_mlflow('{model_uri}').")
    return "\n".join(lines)


def version_tags(content: dict[str, Any]) -> dict[str, str]:
    """A registered version's tags: ``medxlate.task`` (``CT->MR``), source and target modality, inference
    strategy, medxlate version, dataset fingerprint (when known) and ``val/<metric>`` headline metrics."""
    tags = {
        "medxlate.task": f"{content.get('source_modality', '?')}->{content.get('target_modality', '?')}",
        "medxlate.source_modality": str(content.get("source_modality", "?")),
        "medxlate.target_modality": str(content.get("target_modality", "?")),
        "medxlate.inference": str((content.get("inference") or {}).get("kind", "?")),
        "medxlate.version": str(content.get("medxlate_version", "?")),
    }
    if content.get("dataset_fingerprint"):
        tags["medxlate.dataset_fingerprint"] = str(content["dataset_fingerprint"])
    tags.update({f"val/{key}": f"{value:.6g}" for key, value in _headline(content).items()})
    return tags
