"""Translator: rebuild a trained generator, its preprocessing and its inference strategy from a checkpoint
and translate whole volumes (slice-wise 2D/2.5D or sliding-window 3D), or reconstruct a CT volume
from radiographs (``lift``, X-ray -> CT: see :mod:`medxlate.inference.lift`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
from monai.data import MetaTensor

from medxlate.checkpoint import checkpoint_field, load_checkpoint
from medxlate.errors import CheckpointError, GeometryError, InputDataError
from medxlate.inference import lift
from medxlate.inference.background import fill_outside_body
from medxlate.inference.device import resolve_device
from medxlate.inference.finite import check_finite_input, check_finite_output, check_finite_weights
from medxlate.inference.loading import build_generator_from_spec, checked_strategy, model_file, model_in_artifacts
from medxlate.inference.runner import infer_volume
from medxlate.inference.strategy import (
    InferenceStrategy,
    LiftStrategy,
    SliceStrategy,
    strategy_to_dict,
)
from medxlate.transforms import Preprocessing, restore_grid

logger = logging.getLogger(__name__)

SYNTHETIC_DESCRIPTION = "SYNTHETIC {modality} by medxlate; not for diagnosis"


class Translator:
    """Translate whole volumes with a trained generator and its inference strategy, or (``lift``)
    reconstruct a CT from radiographs (:meth:`translate_radiographs`, :meth:`translate_views`).

    Args:
        generator: The trained generator (2D for ``slices``, 3D for ``sliding_window``; views ->
            volume for ``lift``).
        preprocessing: The recipe it was trained with.
        target_modality: Name used to mark outputs (e.g. ``"MR"``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        strategy: How the generator covers a volume; ``None`` is slice-wise with the
            preprocessing's context.
        sw_batch_size: Slices or windows per forward pass; ``None`` keeps the strategy's.
        bf16: bf16 autocast on CUDA.
        provenance: Facts about the model (run id, checkpoint, version) written next to outputs.
        progress: Show a progress bar (on stderr) while a volume is translated.

    Attributes:
        config: The checkpoint's resolved training config (``{}`` unless built by :meth:`from_checkpoint`).
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
        progress: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.generator = generator.to(self.device).eval()
        self.preprocessing = preprocessing
        self.target_modality = target_modality
        strategy = strategy or SliceStrategy(context_slices=preprocessing.context_slices)
        self.strategy = strategy if sw_batch_size is None else replace(strategy, sw_batch_size=sw_batch_size)
        self.bf16 = bf16
        self.provenance = dict(provenance or {})
        self.progress = progress
        self.config: dict[str, Any] = {}

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device | None = "auto", progress: bool = False
    ) -> Translator:
        """Load generator weights and preprocessing from a medxlate checkpoint or model package (``weights_only``).

        Args:
            path: The checkpoint file, or a model package folder (``medxlate export``): its files are
                checked against its ``SHA256SUMS`` before its checkpoint is read.
            device: See :func:`resolve_device`.
            progress: Show a progress bar (on stderr) while a volume is translated.

        Raises:
            CheckpointError: if the file is not a usable medxlate checkpoint, or a package file was
                modified or truncated (named).
        """
        package = Path(path).resolve() if Path(path).is_dir() else None
        path, record = model_file(path)
        content = load_checkpoint(path)
        generator = build_generator_from_spec(checkpoint_field(content, path, "generator_spec", dict), path)
        weights = checkpoint_field(content, path, "generator", dict)
        prep_record = checkpoint_field(content, path, "preprocessing", dict)
        config = checkpoint_field(content, path, "config", dict) if "config" in content else {}
        try:
            generator.load_state_dict(weights)
            prep = Preprocessing.from_dict(prep_record)
        except (KeyError, RuntimeError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{path}: weights do not match the checkpoint's generator spec: {first_line}") from e
        strategy = checked_strategy(path, content, prep)
        check_finite_weights(generator, str(path))
        if prep.domain is None and prep.pixdim is None and not isinstance(strategy, LiftStrategy):
            why = "imported without --pixdim" if "imported_from" in content else "written before medxlate recorded it"
            logger.warning(
                "%s: checkpoint records no training spacing (%s); "
                "inputs are translated at their own spacing, whatever the model was trained on",
                path,
                why,
            )
        provenance = {
            "checkpoint": str(Path(path).resolve()),
            "mlflow_run_id": content.get("mlflow_run_id"),
            "epoch": content.get("epoch"),
            "medxlate_version": content.get("medxlate_version"),
            "config_name": config.get("name"),
            "source_modality": content.get("source_modality"),
            **({"package": str(package), "license": record.get("license")} if package and record else {}),
        }
        translator = cls(
            generator,
            prep,
            content.get("target_modality", prep.task.target_modality),
            device,
            strategy,
            provenance=provenance,
            progress=progress,
        )
        translator.config = config
        return translator

    @classmethod
    def from_mlflow(cls, model_uri: str, device: str | torch.device | None = "auto") -> Translator:
        """Load from an MLflow artifact URI such as ``runs:/<run id>/model``.

        Raises:
            CheckpointError: if no checkpoint is found under the URI.
        """
        import mlflow

        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
        except mlflow.exceptions.MlflowException as e:
            raise CheckpointError(
                f"{model_uri}: not found in the MLflow store {mlflow.get_tracking_uri()} ({e.error_code}); "
                "expected runs:/<run id>/<path>, models:/<name>/<version> or models:/<name>@<alias>"
            ) from e
        translator = cls.from_checkpoint(model_in_artifacts(local, model_uri), device)
        translator.provenance["mlflow_model_uri"] = model_uri
        return translator

    @classmethod
    def from_pretrained(
        cls, reference: str | Path, device: str | torch.device | None = "auto", progress: bool = False
    ) -> Translator:
        """Load a model package, a checkpoint or an MLflow model; nothing is downloaded from a hub.

        Args:
            reference: A package folder or checkpoint file (a path or ``file://`` URL), or an MLflow
                model (``runs:/<run id>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``).
            device: See :func:`resolve_device`.
            progress: Show a progress bar (on stderr) while a volume is translated.

        Raises:
            CheckpointError: an unusable or tampered model (the file named), or a reference of another
                kind (``http(s)://``, ``hf://``...).
        """
        from medxlate.package import resolve_reference

        kind, target = resolve_reference(reference)
        if kind == "mlflow":
            return cls.from_mlflow(str(target), device)
        return cls.from_checkpoint(target, device, progress)

    def __call__(self, volume: MetaTensor, fill_background: bool = True) -> MetaTensor:
        """Translate a (1, X, Y, Z) volume in source units (CT in HU; MR in its own units).

        The volume is translated on the model's training spacing (the configured ``pixdim``, else
        the rule of :mod:`medxlate.transforms.domain`) and the result resampled back onto the
        input's grid; a warning is logged when its intensities or field of view are far from the
        training data's.

        Args:
            volume: The input with its affine.
            fill_background: Where the task has a body rule (CT -> MR: CT above -500 HU), set the
                voxels outside the input's body to the target's background
                (:mod:`medxlate.inference.background`); ``False`` keeps the generator's output
                everywhere (``evaluate`` scores that: the model, not this rule).

        Returns:
            A MetaTensor on exactly the input's grid and affine, in target units.

        Raises:
            DeviceMemoryError: if even one slice or window per batch does not fit in device memory.
            GeometryError: if the volume is not one channel of three spatial dimensions.
            InputDataError: if the input holds NaN/inf voxels (see :mod:`medxlate.inference.finite`).
            NonFiniteError: if the output would hold NaN/inf voxels.
            InputDataError: if this is an X-ray -> CT (``lift``) model, which needs radiographs.
        """
        if isinstance(self.strategy, LiftStrategy):
            raise InputDataError(
                f"this model reconstructs a CT from radiographs ({', '.join(map(str, self.strategy.views))}), "
                "not from a volume: use translate_radiographs() or translate_views()"
            )
        check_single_volume(volume, "input volume")
        check_finite_input(volume, "input volume")
        prep = self.preprocessing
        pixdim = self.model_spacing(volume)
        source = prep.source_to_model(volume, pixdim)
        if prep.domain is not None:  # a per-volume normalised source (MR) is compared in model units
            checked = source if prep.task.normaliser("source").per_volume else volume
            prep.domain.warn_if_unfamiliar(checked, checked.affine, prep.source_unit_range)
        output = infer_volume(
            self.generator, source.as_tensor(), self.strategy, prep.divisible, self.device, self.bf16, self.progress
        )
        check_finite_output(output, "translation")
        canonical = MetaTensor(prep.model_to_target(output), affine=source.affine.clone())
        result = restore_grid(canonical, volume, resampled=pixdim is not None)
        return fill_outside_body(result, volume, prep) if fill_background else result

    def model_spacing(self, volume: MetaTensor) -> tuple[float, float, float] | None:
        """The spacing (mm) ``volume`` is resampled to before the model sees it, or ``None`` (its own).

        Slice-wise 2D models never see the slice distance; 2.5D (neighbours as channels) and 3D do.
        """
        through_plane = not isinstance(self.strategy, SliceStrategy) or self.strategy.context_slices > 0
        return self.preprocessing.inference_spacing(volume, through_plane)

    def translate_views(self, views: torch.Tensor) -> MetaTensor:
        """Reconstruct a CT from ``(V, S, S)`` views in the model's units ``[-1, 1]`` (``lift`` models).

        Views are DRRs (:func:`medxlate.xray.views_from_hu`) or radiographs mapped by
        :func:`medxlate.xray.to_detector_domain` then ``2 x - 1``, in the strategy's view order.

        Returns:
            ``(1, S, S, S)`` CT in HU (inside the CT window) on the documented grid
            :meth:`LiftStrategy.grid_affine`: isotropic ``fov_mm / size`` mm, RAS axes, centred on
            the world origin (the views' isocentre).

        Raises:
            InputDataError: for a volume model, views of the wrong shape or count, or NaN/inf views.
            NonFiniteError: if the output would hold NaN/inf voxels.
        """
        strategy = self._lift_strategy("translate_views")
        output = lift.predict_views(self.generator, views, strategy, self.device, self.bf16)
        return MetaTensor(self.preprocessing.model_to_target(output), affine=strategy.grid_affine())

    def translate_radiographs(
        self,
        paths: Sequence[str | Path],
        output_path: str | Path,
        pixel_mm: float | tuple[float, float] | None = None,
        output_format: Literal["nifti", "dicom"] = "nifti",
        force: bool = False,
    ) -> Path:
        """Reconstruct a CT from radiograph files and write it marked synthetic, with a sidecar.

        Each file (CR/DX DICOM, PNG, TIFF) is read with :func:`medxlate.xray.load_radiograph`
        and mapped onto its view's detector (:func:`medxlate.xray.to_detector_domain`). The output is
        on the grid of :meth:`translate_views` (stated in the sidecar's ``source.output_grid``); its
        sidecar records each radiograph's path and SHA-256, how it was read and mapped (spacing used
        and its source, crop/pad, intensity window), the preprocessing and the lift strategy.

        Args:
            paths: One radiograph per view, in the model's view order (e.g. PA then LL).
            output_path: Output NIfTI, or (``dicom``) a new or empty folder (a new anonymous study).
            pixel_mm: Detector pixel spacing (mm) for files without one (it overrides the files').
            output_format: ``nifti`` or ``dicom``.
            force: translate radiographs the domain checks refuse
                (:mod:`medxlate.xray.radiograph_domain`: not CR/DX, a localizer, another view, a
                constant image), with a warning each; the sidecar records every check and ``force``.

        Returns:
            The written NIfTI path or DICOM folder.

        Raises:
            InputDataError: naming the file: wrong view count, unreadable/colour/multi-frame file,
                NaN/inf pixels, no spacing and no ``pixel_mm``, a file the domain checks refuse
                (unless ``force``); or a volume model.
            NonFiniteError: if the reconstruction holds NaN/inf; nothing is written.
            OutputError: the output or its sidecar would replace or land inside an input.
        """
        from medxlate.io.guard import guard_outputs
        from medxlate.io.provenance import HASH_FILES_METHOD, hash_files
        from medxlate.io.save import sidecar_path

        strategy = self._lift_strategy("translate_radiographs")
        paths = [Path(p) for p in paths]
        guard_outputs([(output_path, "output"), (sidecar_path(output_path), "provenance sidecar")], paths)
        described = [lift.describe_radiograph(p) for p in paths] if len(paths) == len(strategy.views) else []
        views, records = lift.views_from_radiographs(paths, strategy, pixel_mm, force)  # checks the count first
        result = self.translate_views(views)
        radiographs = [{**origin, **record} for origin, record in zip(described, records, strict=True)]
        several = len(paths) > 1
        return self.write(
            result,
            output_path,
            output_format,
            source_sha256=hash_files(paths) if several else radiographs[0]["sha256"],
            source_record={
                "kind": "radiographs",
                **({"sha256_method": HASH_FILES_METHOD} if several else {}),
                "radiographs": radiographs,
                "pixel_mm_given": pixel_mm,
                "force_given": force,
                "output_grid": lift.output_grid_record(strategy),
            },
            model_spacing=(strategy.spacing_mm,) * 3,
        )

    def _lift_strategy(self, method: str) -> LiftStrategy:
        if not isinstance(self.strategy, LiftStrategy):
            raise InputDataError(
                f"{method}: this model translates volumes (inference '{self.strategy.kind}'), not radiographs; "
                "it needs an X-ray -> CT (lift) model"
            )
        return self.strategy

    @property
    def description(self) -> str:
        """NIfTI header description marking outputs as synthetic (and, for X-ray -> CT, from radiographs)."""
        if isinstance(self.strategy, LiftStrategy):
            return lift.LIFT_DESCRIPTION
        return SYNTHETIC_DESCRIPTION.format(modality=self.target_modality)

    @property
    def model_name(self) -> str:
        """Identifier-free name of the model for DICOM descriptions: config name and MLflow run."""
        parts = [str(self.provenance.get("config_name") or "model")]
        if self.provenance.get("mlflow_run_id"):
            parts.append(f"run {self.provenance['mlflow_run_id']}")
        elif self.provenance.get("checkpoint"):
            parts.append(Path(str(self.provenance["checkpoint"])).name)
        return " ".join(parts)

    def translate_file(
        self, input_path: str | Path, output_path: str | Path, output_format: Literal["nifti", "dicom"] = "nifti"
    ) -> Path:
        """Load, translate and save a volume marked synthetic, with a provenance sidecar.

        Args:
            input_path: Source volume (NIfTI, NRRD, MHA, DICOM series folder or file).
            output_path: Output NIfTI file, or (``dicom``) a new or empty folder for the series.
            output_format: ``nifti``, or ``dicom``: a series of the target modality's IOD in the
                source's study (see :func:`medxlate.io.dicom_export.save_dicom_series`; a non-DICOM
                input falls back to a new anonymous study, with a warning).

        The output and its sidecar must not be (or lie inside) the input: checked before anything
        is read or written (see :mod:`medxlate.io.guard`). The input is identified before writing
        (:func:`medxlate.io.provenance.describe_source`): path, content hash and, for DICOM, the
        series UID and file count. The sidecar also records the geometry as read, the preprocessing
        applied and the model; it stays with the output in the hospital (it may hold the series UID).

        Returns:
            The written NIfTI path or DICOM folder.

        Raises:
            InputDataError: if the input holds NaN/inf voxels (named with its path).
            NonFiniteError: if the translation holds NaN/inf; nothing is written.
            OutputError: the output or its sidecar would replace or land inside the input.
        """
        from medxlate.io import load_volume
        from medxlate.io.guard import guard_outputs
        from medxlate.io.load import NIFTI_SUFFIXES
        from medxlate.io.provenance import describe_geometry, describe_source
        from medxlate.io.save import sidecar_path
        from medxlate.io.sitk_formats import SITK_SUFFIXES

        if isinstance(self.strategy, LiftStrategy):  # one radiograph: a single-view X-ray -> CT model
            return self.translate_radiographs([input_path], output_path, output_format=output_format)
        guard_outputs([(output_path, "output"), (sidecar_path(output_path), "provenance sidecar")], [input_path])
        path = Path(input_path)
        origin = describe_source(path)  # hashed before anything is written
        is_dicom = not path.name.lower().endswith((*NIFTI_SUFFIXES, *SITK_SUFFIXES))
        source = load_volume(path)
        check_single_volume(source, str(path))
        check_finite_input(source, str(path))
        result = self(source)
        geometry = {**describe_geometry(source), "resampled_on_load": source.meta.get("resampled", "")}
        return self.write(
            result,
            output_path,
            output_format,
            dicom_source=path if is_dicom else None,
            source_sha256=origin["sha256"],
            source_record={**origin, **geometry},
            model_spacing=self.model_spacing(source),
        )

    def write(
        self,
        result: MetaTensor,
        output_path: str | Path,
        output_format: Literal["nifti", "dicom"] = "nifti",
        *,
        dicom_source: Any = None,
        source_sha256: str | None = None,
        source_record: dict[str, Any] | None = None,
        model_spacing: tuple[float, float, float] | None = None,
    ) -> Path:
        """Save a translated volume marked synthetic (NIfTI file or DICOM series), then its sidecar.

        Args:
            result: What :meth:`__call__` returned.
            output_path: NIfTI file, or (``dicom``) a new or empty folder.
            output_format: ``nifti`` or ``dicom``.
            dicom_source: For ``dicom``: the source series (folder, file, or
                :class:`~medxlate.io.dicom_export.SourceSeries`); ``None`` = anonymous new study.
            source_sha256: Checksum of the input file, recorded in the provenance sidecar.
            source_record: What identifies the input (:func:`medxlate.io.provenance.describe_source`
                plus its geometry as read); may hold the DICOM series UID: such a sidecar stays in
                the hospital.
            model_spacing: The spacing (mm) the model saw (``None``: the input's own).

        Returns:
            The written NIfTI path or DICOM folder. The sidecar is written last, so its presence
            marks a finished output.
        """
        from medxlate import __version__
        from medxlate.io import save_volume, write_provenance
        from medxlate.io.provenance import HOSPITAL_ONLY_KEYS

        if output_format == "dicom":
            from medxlate.io.dicom_export import save_dicom_series

            modality = "CT" if self.target_modality.upper() == "CT" else "MR"
            save_dicom_series(result, output_path, modality=modality, source=dicom_source, model=self.model_name)
            written = Path(output_path)
        else:
            written = save_volume(result, output_path, description=self.description)
        write_provenance(
            written,
            {
                "synthetic": True,
                "description": self.description,
                "source_sha256": source_sha256,
                "source": source_record,
                "preprocessing": {
                    **self.preprocessing.to_dict(),
                    "inference": strategy_to_dict(self.strategy),
                    "model_spacing_mm": model_spacing,
                },
                "medxlate_version": __version__,
                **self.provenance,
            },
            allow_identifiers=HOSPITAL_ONLY_KEYS,
        )
        return written


def check_single_volume(volume: torch.Tensor, where: str) -> None:
    """Refuse anything but one channel of three spatial dimensions, ``(1, X, Y, Z)``.

    Args:
        volume: Channel-first volume as returned by :func:`medxlate.io.load_volume`.
        where: The file or argument it came from, for the message.

    Raises:
        GeometryError: naming ``where``, the shape found and the shape expected.
    """
    shape = tuple(volume.shape)
    if len(shape) == 4 and shape[0] == 1:
        return
    found = f"{shape[0]} channels or time points" if len(shape) == 4 else f"{len(shape) - 1} spatial dimensions"
    raise GeometryError(
        f"{where}: image of shape {shape} (channel first) has {found}; expected a single 3D volume (1, X, Y, Z)"
    )
