"""MLflow Model Registry: tracking.register_as registers a pyfunc model; models:/ URIs and aliases load it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medxlate.api import train
from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import CheckpointError, ConfigError
from medxlate.inference import Translator
from medxlate.io import load_volume
from tests.conftest import tiny_config


def test_registered_model_loads_by_version_and_alias(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    prepare_dataset(paired_folder, tmp_path / "dataset")
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)
    raw["tracking"] = {"backend": "mlflow", "register_as": "tiny_ct2mr"}
    result = train(validate_config(raw))
    assert result.registered_model == "models:/tiny_ct2mr/1"
    MlflowClient().set_registered_model_alias("tiny_ct2mr", "champion", "1")
    local = Translator.from_checkpoint(result.checkpoint, device="cpu")
    source = load_volume(paired_folder / "patient_2" / "ct.nii.gz")
    expected = local(source)
    for model_uri in ("models:/tiny_ct2mr/1", "models:/tiny_ct2mr@champion"):
        remote = Translator.from_mlflow(model_uri, device="cpu")
        assert Path(remote.provenance["checkpoint"]).name == "model.pt"  # the slim inference checkpoint
        assert Path(remote.provenance["package"], "SHA256SUMS").is_file()  # of the package, verified
        assert remote.preprocessing == local.preprocessing
        torch.testing.assert_close(remote(source).as_tensor(), expected.as_tensor(), rtol=0, atol=0)
        torch.testing.assert_close(remote(source).affine, expected.affine)
    stored = Path(mlflow.artifacts.download_artifacts("models:/tiny_ct2mr/1")) / "artifacts" / "package"
    assert sorted(p.name for p in stored.iterdir()) == ["MODEL_CARD.md", "SHA256SUMS", "model.json", "model.pt"]
    assert json.loads((stored / "model.json").read_text())["task"]["direction"] == "CT -> MR"
    model = mlflow.pyfunc.load_model("models:/tiny_ct2mr@champion")
    inputs = model.metadata.get_input_schema().inputs[0]
    assert inputs.shape == (1, -1, -1, -1) and inputs.type == np.dtype(np.float32)
    array = source.as_tensor().numpy().astype(np.float32)
    on_identity = local(MetaTensor(torch.from_numpy(array), affine=torch.eye(4)))
    np.testing.assert_allclose(model.predict(array), on_identity.as_tensor().numpy(), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="models:/tiny_ct2mr/7: not found in the MLflow store"):
        Translator.from_mlflow("models:/tiny_ct2mr/7")
    with pytest.raises(CheckpointError, match="models:/nope@champion: not found"):
        Translator.from_mlflow("models:/nope@champion")


def test_register_as_needs_mlflow(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run")
    raw["tracking"] = {"backend": "none", "register_as": "x"}
    with pytest.raises(ConfigError, match="register_as needs backend: mlflow"):
        validate_config(raw)
