"""Translator: rebuild a trained generator, its preprocessing and its inference strategy from a checkpoint
and translate whole volumes (slice-wise 2D/2.5D or sliding-window 3D)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor

from medxlate.checkpoint import load_checkpoint
from medxlate.errors import CheckpointError
from medxlate.inference.runner import infer_volume
from medxlate.inference.strategy import InferenceStrategy, SliceStrategy, strategy_from_dict
from medxlate.transforms import Preprocessing, restore_grid

SYNTHETIC_DESCRIPTION = "SYNTHETIC {modality} by medxlate; not for diagnosis"


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU; anything else as given."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_generator_from_spec(spec: dict[str, Any]) -> torch.nn.Module:
    """Build the generator described by a checkpoint's ``generator_spec``.

    Raises:
        CheckpointError: if the spec is incomplete.
    """
    from medxlate.models import build_generator

    try:
        return build_generator(
            spec["name"], spec["spatial_dims"], spec["in_channels"], spec["out_channels"], **spec["params"]
        )
    except KeyError as e:
        raise CheckpointError(f"checkpoint generator_spec lacks {e}") from e


class Translator:
    """Translate whole volumes with a trained generator and its inference strategy.

    Args:
        generator: The trained generator (2D for ``slices``, 3D for ``sliding_window``).
        preprocessing: The recipe it was trained with.
        target_modality: Name used to mark outputs (e.g. ``"MR"``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        strategy: How the generator covers a volume; ``None`` is slice-wise with the
            preprocessing's context.
        sw_batch_size: Slices or windows per forward pass; ``None`` keeps the strategy's.
        bf16: bf16 autocast on CUDA.
        provenance: Facts about the model (run id, checkpoint, version) written next to outputs.
    """

    def __init__(
        self,
        generator: torch.nn.Module,
        preprocessing: Preprocessing,
        target_modality: str = "MR",
        device: str | torch.device | None = "auto",
        strategy: InferenceStrategy | None = None,
        sw_batch_size: int | None = None,
        bf16: bool = True,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.generator = generator.to(self.device).eval()
        self.preprocessing = preprocessing
        self.target_modality = target_modality
        strategy = strategy or SliceStrategy(context_slices=preprocessing.context_slices)
        self.strategy = strategy if sw_batch_size is None else replace(strategy, sw_batch_size=sw_batch_size)
        self.bf16 = bf16
        self.provenance = dict(provenance or {})

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = "auto") -> Translator:
        """Load generator weights and preprocessing from a medxlate checkpoint (``weights_only``).

        Raises:
            CheckpointError: if the file is not a usable medxlate checkpoint.
        """
        content = load_checkpoint(path)
        try:
            generator = build_generator_from_spec(content["generator_spec"])
            generator.load_state_dict(content["generator"])
            prep = Preprocessing.from_dict(content["preprocessing"])
        except (KeyError, RuntimeError) as e:
            raise CheckpointError(f"{path}: checkpoint does not match its generator spec: {e}") from e
        strategy = _checked_strategy(path, content, prep)
        provenance = {
            "checkpoint": str(Path(path).resolve()),
            "mlflow_run_id": content.get("mlflow_run_id"),
            "epoch": content.get("epoch"),
            "medxlate_version": content.get("medxlate_version"),
            "config_name": content.get("config", {}).get("name"),
        }
        return cls(generator, prep, content.get("target_modality", "MR"), device, strategy, provenance=provenance)

    @classmethod
    def from_mlflow(cls, model_uri: str, device: str | torch.device | None = "auto") -> Translator:
        """Load from an MLflow artifact URI such as ``runs:/<run id>/model``.

        Raises:
            CheckpointError: if no checkpoint is found under the URI.
        """
        import mlflow

        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
        candidates = [local] if local.is_file() else sorted(local.rglob("*.pt"))
        if not candidates:
            raise CheckpointError(f"{model_uri}: no checkpoint (*.pt) found among the artifacts")
        translator = cls.from_checkpoint(candidates[0], device)
        translator.provenance["mlflow_model_uri"] = model_uri
        return translator

    def __call__(self, volume: MetaTensor) -> MetaTensor:
        """Translate a (1, X, Y, Z) volume in source units (CT in HU).

        Returns:
            A MetaTensor on exactly the input's grid and affine, in target units.

        Raises:
            DeviceMemoryError: if even one slice or window per batch does not fit in device memory.
        """
        prep = self.preprocessing
        source = prep.source_to_model(volume)
        output = infer_volume(self.generator, source.as_tensor(), self.strategy, prep.divisible, self.device, self.bf16)
        canonical = MetaTensor(prep.model_to_target(output), affine=source.affine.clone())
        return restore_grid(canonical, volume, resampled=prep.pixdim is not None)

    @property
    def description(self) -> str:
        """NIfTI header description marking outputs as synthetic."""
        return SYNTHETIC_DESCRIPTION.format(modality=self.target_modality)

    def translate_file(self, input_path: str | Path, output_path: str | Path) -> Path:
        """Load, translate and save a volume as NIfTI marked synthetic, with a provenance sidecar.

        Returns:
            The written NIfTI path.
        """
        from medxlate import __version__
        from medxlate.io import load_volume, save_volume, write_provenance

        source = load_volume(input_path)
        result = self(source)
        written = save_volume(result, output_path, description=self.description)
        write_provenance(
            written,
            {
                "synthetic": True,
                "description": self.description,
                "source_sha256": _sha256(Path(input_path)) if Path(input_path).is_file() else None,
                "medxlate_version": __version__,
                **self.provenance,
            },
        )
        return written


def _checked_strategy(path: str | Path, content: dict[str, Any], prep: Preprocessing) -> InferenceStrategy:
    """The checkpoint's inference strategy (``slices`` for checkpoints that predate the record),
    checked against the generator's dimensionality and the preprocessing's context."""
    strategy = strategy_from_dict(content.get("inference"), prep.context_slices)
    spatial_dims = content["generator_spec"].get("spatial_dims")
    expected = 2 if isinstance(strategy, SliceStrategy) else 3
    if spatial_dims != expected:
        raise CheckpointError(
            f"{path}: inference strategy '{strategy.kind}' needs a {expected}D generator, "
            f"the checkpoint holds a {spatial_dims}D one"
        )
    if isinstance(strategy, SliceStrategy) and strategy.context_slices != prep.context_slices:
        raise CheckpointError(
            f"{path}: inference context_slices {strategy.context_slices} differs from the preprocessing's "
            f"{prep.context_slices}"
        )
    return strategy


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
