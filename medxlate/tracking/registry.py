"""MLflow Model Registry: a trained checkpoint as a registered pyfunc model with a signature.

The pyfunc model carries the medxlate checkpoint as its one artifact; loading it (or calling
``Translator.from_mlflow("models:/NAME/VERSION")`` / ``"models:/NAME@alias"``) rebuilds the generator
and its preprocessing exactly as :meth:`~medxlate.inference.Translator.from_checkpoint` does.
``predict`` takes a ``(1, X, Y, Z)`` float32 array in source units on an identity (RAS, 1 mm) grid
and returns the translated ``(1, X, Y, Z)`` float32 array in target units; use ``Translator`` for
geometry-aware inference on files. An X-ray -> CT model (``lift`` strategy) takes its ``(V, S, S)``
views in the model's [-1, 1] (DRRs, or radiographs mapped with :func:`medxlate.xray.to_detector_domain`
then ``2x - 1``) and returns the ``(1, S, S, S)`` CT in HU on its documented grid.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

ARTIFACT_PATH = "translator"


class TranslatorModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a medxlate checkpoint (loaded on CPU unless CUDA is available)."""

    def load_context(self, context: Any) -> None:
        """Rebuild the Translator from the checkpoint artifact."""
        from medxlate.inference import Translator

        self.translator = Translator.from_checkpoint(context.artifacts["checkpoint"])

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

    Uses ``tracking_uri`` or else the current MLflow tracking URI (the registry lives in the same store).

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

    views_in = (load_checkpoint(checkpoint).get("inference") or {}).get("kind") == "lift"
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # the signature is given explicitly; an input example would be a whole volume in the store
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        info = mlflow.pyfunc.log_model(
            name=ARTIFACT_PATH,
            python_model=TranslatorModel(),
            artifacts={"checkpoint": str(checkpoint)},
            signature=signature(views_in),
            pip_requirements=requirements,
            registered_model_name=name,
        )
    return int(info.registered_model_version)
