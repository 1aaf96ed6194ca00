"""Typed, frozen experiment configuration models (pydantic v2).

Every section rejects unknown keys (``extra="forbid"``) so a typo fails loudly at load time instead
of being silently ignored. Relative paths are resolved against the current working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from medxlate.config.bounds import BatchSize, Count, Spacing, Threads, Voxels, Workers, between


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def registered_name(family: str, name: str) -> str:
    """Check ``name`` against a model registry at validation time, before any run starts.

    Args:
        family: ``"generator"``, ``"discriminator"``, ``"adversarial"`` (loss), ``"loss term"`` or ``"task"``.
        name: The configured name.

    Returns:
        ``name`` unchanged.

    Raises:
        PydanticCustomError: with the registry's "did you mean" message, for an unknown name.
    """
    from medxlate import models  # lazy: the registries need torch, the config module does not
    from medxlate.errors import RegistryError
    from medxlate.tasks import TASKS

    registries = {
        "generator": models.GENERATORS,
        "discriminator": models.DISCRIMINATORS,
        "adversarial": models.ADVERSARIAL_LOSSES,
        "task": TASKS,
        "loss term": models.LOSS_TERMS,
    }
    try:
        registries[family].get(name)
    except RegistryError as e:
        raise PydanticCustomError("unknown_name", str(e)) from e
    return name


# Options that only make sense for one kind of model; naming one for the other is a config error.
ONLY_2D = ("context_slices",)
ONLY_3D = ("patch_size", "patches_per_volume", "foreground_prob")


class DataConfig(_Frozen):
    """Where the prepared dataset lives, how volumes are preprocessed, cached and sampled.

    Attributes:
        dataset: Folder holding ``dataset.json`` (written by ``medxlate prepare``); for
            ``data.task: xray2ct`` also a folder of CT volumes (NIfTI/NRRD/MetaImage files) or a
            DICOM tree with CT series (split by ``xray.val_fraction``).
        task: The translation (``ct2mr``, ``mr2ct``; :mod:`medxlate.tasks`). Its source modality is
            read from whichever dataset role holds it (``mr2ct`` on a CT -> MR dataset swaps them).
        spatial_dims: 2 for slice-wise (2D/2.5D) translation (``slices`` sampler), 3 for volumetric
            translation on patches (``patches`` sampler).
        context_slices: 2D only. Neighbouring slices on each side fed as extra channels (2.5D); 0 is
            plain 2D.
        patch_size: 3D only (required there). Training patch (X, Y, Z) in voxels of the canonical grid;
            each size must be a multiple of the generator's total stride. A volume smaller than the
            patch along an axis is padded (images with the value of air, the mask with 0).
        patches_per_volume: 3D only. Patches drawn per training volume and epoch (the epoch length).
        foreground_prob: 3D only. Probability that a patch is centred on a body-mask voxel (else on a
            background voxel), as MONAI's ``RandCropByPosNegLabeld`` with ``pos/(pos+neg)``.
        pixdim: Voxel spacing (mm) to resample to before training/inference; ``None`` keeps the data's.
        source_window: The CT window in HU, clipped and scaled to [-1, 1] (the CT's, whichever role it
            plays: the target's for ``mr2ct``; the name is kept from CT -> MR).
        target_percentiles: Per-volume percentiles of the MR mapped to [-1, 1] (the MR's, whichever role).
        batch_size: Slices (2D) or patches (3D) per training batch.
        flip_prob: Probability of a random left-right flip of each training pair.
        cache_dir: Where preprocessed volumes are cached on disk (built once, reused while the dataset
            and preprocessing are unchanged); ``None`` is ``<train.output_dir>/data_cache``.
        cache_volumes: Volumes each data-loading process keeps fully in RAM (the first ones it
            touches); the rest are read lazily, one slice or patch at a time, from the disk cache.
    """

    dataset: Path
    task: str = "ct2mr"
    spatial_dims: Literal[2, 3] = 2
    context_slices: int = Field(default=0, ge=0, le=8)
    patch_size: tuple[Voxels, Voxels, Voxels] | None = None
    patches_per_volume: Count = 8
    foreground_prob: float = Field(default=0.9, ge=0.0, le=1.0)
    pixdim: tuple[Spacing, Spacing, Spacing] | None = None
    source_window: tuple[float, float] = (-1024.0, 3071.0)
    target_percentiles: tuple[float, float] = (0.5, 99.5)
    batch_size: BatchSize = 4
    flip_prob: float = Field(default=0.0, ge=0.0, le=1.0)
    cache_dir: Path | None = None
    cache_volumes: int = Field(default=4, ge=0)

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        return registered_name("task", name)

    @field_validator("source_window", "target_percentiles")
    @classmethod
    def _increasing(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not value[0] < value[1]:
            raise ValueError(f"expected an increasing pair [low, high], got {list(value)}")
        return value

    @model_validator(mode="after")
    def _options_match_dims(self) -> DataConfig:
        """Reject options of the other kind of model by name (explicitly given ones only)."""
        foreign = ONLY_2D if self.spatial_dims == 3 else ONLY_3D
        given = sorted(name for name in foreign if name in self.model_fields_set)
        if given:
            kind = "2D-only" if self.spatial_dims == 3 else "3D-only"
            raise ValueError(
                f"{', '.join('data.' + n for n in given)}: {kind} option(s) in a config with "
                f"data.spatial_dims: {self.spatial_dims}; remove them"
                + (" (3D models see neighbouring slices through data.patch_size)" if self.spatial_dims == 3 else "")
            )
        if _is_projection_task(self.task):
            if self.spatial_dims != 3 or self.patch_size is not None:
                raise ValueError(
                    f"data.task: {self.task} predicts whole volumes on the xray.size grid from views: expected "
                    "data.spatial_dims: 3 and no data.patch_size"
                )
            return self
        if self.spatial_dims == 3 and self.patch_size is None:
            raise ValueError("data.patch_size: required with data.spatial_dims: 3 (e.g. [96, 96, 32])")
        return self


def _is_projection_task(name: str) -> bool:
    from medxlate.tasks import get_task

    return get_task(name).geometry == "projection"


class XrayConfig(_Frozen):
    """X-ray -> CT (``data.task: xray2ct``): views, DRR geometry, model grid and augmentation.

    The model grid is a cube of ``size`` voxels over ``fov_mm`` (isotropic), RAS-oriented and centred
    on the isocentre; each view is a cone-beam DRR on a ``size`` x ``size`` detector covering the
    field at the isocentre (pixel ``fov_mm * sdd_mm / sad_mm / size`` mm). The default distances are
    X2CT-GAN's (source-to-isocentre 541 mm, source-to-detector 949 mm).

    Attributes:
        views: The views, in order: ``[PA]`` (single view) or ``[PA, LL]`` (biplanar); named views
            (PA, AP, LL, RL) or angles in degrees that are multiples of 90.
        size: Voxels per side of the model grid and pixels per side of each view.
        fov_mm: Field of view per side (mm).
        sdd_mm: Source-to-detector distance (mm).
        sad_mm: Source-to-isocentre distance (mm).
        min_coverage: Smallest fraction of the field a CT must span along every axis (else refused).
        items_per_volume: Training items (random pose and view augmentation) per CT and epoch.
        pose_jitter_deg: Largest random rotation of the patient about each axis (0 disables).
        augment: Intensity and detector augmentation of the views (gamma, blur, noise, offset).
        val_fraction: When ``data.dataset`` is a folder of CT volumes (not a prepared dataset, which
            keeps its own splits): the expected share of volumes validated on, each volume assigned
            by a seeded hash of its content (:mod:`medxlate.data.ct_folder`); at least one volume
            goes to each split.
        split_seed: Seed of that assignment (another seed, another split).
    """

    views: tuple[str | float, ...] = ("PA",)
    size: between(8, 512) = 128
    fov_mm: float = Field(default=320.0, gt=0.0)
    sdd_mm: float = Field(default=949.0, gt=0.0)
    sad_mm: float = Field(default=541.0, gt=0.0)
    min_coverage: float = Field(default=0.5, gt=0.0, le=1.0)
    items_per_volume: Count = 8
    pose_jitter_deg: float = Field(default=3.0, ge=0.0, le=45.0)
    augment: bool = True
    val_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    split_seed: int = 0

    @model_validator(mode="after")
    def _geometry(self) -> XrayConfig:
        from medxlate.errors import ConfigError
        from medxlate.inference.strategy import LiftStrategy

        if not self.views:
            raise ValueError("xray.views: expected at least one view, e.g. [PA] or [PA, LL]")
        try:
            LiftStrategy(self.views, self.size, self.fov_mm, self.sdd_mm, self.sad_mm)
        except ConfigError as e:
            raise ValueError(str(e)) from e
        return self


class ModelConfig(_Frozen):
    """Generator and discriminator names (from the registries) and their parameters."""

    generator: str = "unet"
    generator_params: dict[str, Any] = Field(default_factory=lambda: {"num_downs": 8, "ngf": 64})
    discriminator: str = "patchgan"
    discriminator_params: dict[str, Any] = Field(default_factory=lambda: {"ndf": 64, "n_layers": 3})

    @field_validator("generator", "discriminator")
    @classmethod
    def _known_model(cls, name: str, info: Any) -> str:
        return registered_name(info.field_name, name)

    @field_validator("generator_params", "discriminator_params")
    @classmethod
    def _sizes_in_range(cls, params: dict[str, Any], info: Any) -> dict[str, Any]:
        """Refuse absurd widths and depths (``ngf: 100000000``) at load time, not in the allocator."""
        from medxlate.errors import ConfigError
        from medxlate.models.layers import check_size_params

        family = info.field_name.removesuffix("_params")
        try:
            check_size_params(params, f"{family} '{info.data.get(family, '?')}'")
        except ConfigError as e:
            raise PydanticCustomError("out_of_range", str(e)) from e
        return params


class LossConfig(_Frozen):
    """Adversarial loss (lsgan, vanilla, hinge) weighted by ``lambda_adv`` plus L1 weighted by ``lambda_l1``
    plus the registered terms in ``terms`` with their weights (:mod:`medxlate.models.loss_terms`:
    ``mse``, ``projection``), all summed into the generator's objective.

    ``lambda_adv: 0`` trains the generator on L1 alone (a plain regression U-Net); the discriminator
    is then neither built into the objective nor updated.
    """

    adversarial: str = "lsgan"
    lambda_adv: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    lambda_l1: float = Field(default=100.0, ge=0.0, allow_inf_nan=False)
    terms: dict[str, float] = Field(default_factory=dict)

    @field_validator("adversarial")
    @classmethod
    def _known_loss(cls, name: str) -> str:
        return registered_name("adversarial", name)

    @field_validator("terms")
    @classmethod
    def _known_terms(cls, terms: dict[str, float]) -> dict[str, float]:
        for name, weight in terms.items():
            registered_name("loss term", name)
            if name == "l1":
                raise ValueError("loss.terms: 'l1' is weighted by loss.lambda_l1; remove it from terms")
            if not (weight >= 0 and weight < float("inf")):
                raise ValueError(f"loss.terms.{name}: weight {weight}; expected a finite number >= 0")
        return terms


class TrainConfig(_Frozen):
    """Optimisation schedule (pix2pix defaults), checkpointing, device and speed settings.

    The learning rate is constant for ``epochs - decay_epochs`` epochs, then decays linearly to 0.
    ``decay_epochs`` left out (``None``) is the last half of ``epochs`` (pix2pix: 100 of 200), so
    overriding ``epochs`` alone keeps the schedule's shape; after validation it is always an int.
    An explicit ``decay_epochs`` above ``epochs`` is refused.

    Attributes:
        resume: ``latest`` (the checkpoint in ``output_dir``) or a checkpoint path to continue from,
            mid-epoch included; ``None`` starts afresh.
        checkpoint_every: Also checkpoint every N optimisation steps (always at each epoch end).
        compile: ``torch.compile`` generator and discriminator (needs a C++ compiler / Triton).
        channels_last: Channels-last memory format (pays on CUDA with bf16 convolutions).
        cudnn_benchmark: cuDNN autotuning on CUDA (fixed input sizes).
        num_workers: DataLoader worker processes (pinned memory is used on CUDA).
        dist_timeout_s: Timeout of the distributed rendezvous and collectives (torchrun runs).

    ``output_dir`` must be empty or new unless ``resume`` continues the run there or ``overwrite``
    replaces it (see :mod:`medxlate.training.outputs`).
    """

    epochs: Count = 200
    decay_epochs: int | None = Field(default=None, ge=0)
    lr: float = Field(default=2e-4, gt=0.0)
    beta1: float = Field(default=0.5, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    output_dir: Path = Path("outputs/train")
    resume: Literal["latest"] | Path | None = None
    checkpoint_every: int | None = Field(default=None, ge=1)
    compile: bool = False
    channels_last: bool = False
    cudnn_benchmark: bool = True
    num_workers: Workers = 0
    dist_timeout_s: float = Field(default=1800.0, gt=0.0)
    overwrite: bool = False
    log_every: int = Field(default=10, ge=1)
    max_steps_per_epoch: int | None = Field(default=None, ge=1)
    num_threads: Threads | None = None

    @model_validator(mode="after")
    def _decay_within_epochs(self) -> TrainConfig:
        if self.decay_epochs is None:  # resolved here so the logged config states the schedule
            object.__setattr__(self, "decay_epochs", self.epochs // 2)
        elif self.decay_epochs > self.epochs:
            raise ValueError(f"decay_epochs ({self.decay_epochs}) must not exceed epochs ({self.epochs})")
        if self.overwrite and self.resume is not None:
            raise ValueError("overwrite: true and resume exclude each other; expected at most one of them")
        return self


class EvalConfig(_Frozen):
    """How validation and inference run the generator over whole volumes (recorded in checkpoints).

    Attributes:
        sw_batch_size: Slices (2D) or windows (3D) per forward pass; halved automatically on CUDA
            out-of-memory.
        montage_slices: Slices shown in the validation montage.
        roi_size: 3D only: sliding-window size in voxels ``(X, Y, Z)`` on the model's grid, each a
            multiple of the generator's size multiple; volumes smaller than a window are padded with
            air and cropped back.
        overlap: 3D only: fraction of a window shared with each neighbour, in [0, 1).
        blend_mode: 3D only: ``gaussian`` (window centres weigh more, no seams) or ``constant``.
    """

    sw_batch_size: BatchSize = 8
    montage_slices: int = Field(default=1, ge=1, le=8)
    roi_size: tuple[Voxels, Voxels, Voxels] | None = None
    overlap: float = Field(default=0.25, ge=0.0, lt=1.0)
    blend_mode: Literal["gaussian", "constant"] = "gaussian"


class TrackingConfig(_Frozen):
    """Experiment tracking. ``backend: mlflow`` uses MLflow's default store unless ``tracking_uri``
    or the ``MLFLOW_TRACKING_URI`` environment variable says otherwise. ``register_as: NAME``
    registers the final model in the MLflow Model Registry (``models:/NAME/<version>``).
    ``run_name`` names the MLflow run (default: ``<name>-<YYYYmmdd-HHMMSS>``; a resumed run keeps its name).
    The run's artifacts hold the slim inference checkpoint (``model/model.pt``); ``log_checkpoint: true`` also
    uploads the full resumable one (``checkpoint/last.pt``: optimisers and discriminator, several times larger)."""

    backend: Literal["mlflow", "none"] = "mlflow"
    experiment: str | None = None
    run_name: str | None = Field(default=None, min_length=1, max_length=250)
    tracking_uri: str | None = None
    log_images: bool = True
    log_checkpoint: bool = False
    register_as: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")

    @model_validator(mode="after")
    def _registry_needs_mlflow(self) -> TrackingConfig:
        if self.register_as and self.backend != "mlflow":
            raise ValueError("register_as needs backend: mlflow (the model registry is MLflow's)")
        return self


class ExperimentConfig(_Frozen):
    """A whole experiment: data, model, loss, training, evaluation and tracking."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    xray: XrayConfig | None = None  # X-ray -> CT only; filled with the defaults for data.task: xray2ct

    @model_validator(mode="after")
    def _task_fits_model(self) -> ExperimentConfig:
        projection = _is_projection_task(self.data.task)
        if projection and self.model.generator != "x2ct":
            raise ValueError(
                f"model.generator: '{self.model.generator}' maps volumes to volumes; data.task: {self.data.task} "
                "needs a views -> volume generator ('x2ct')"
            )
        if not projection and self.model.generator == "x2ct":
            raise ValueError(f"model.generator: 'x2ct' needs views in (data.task: xray2ct), not {self.data.task}")
        if not projection and "projection" in self.loss.terms:
            raise ValueError(f"loss.terms.projection: needs views (data.task: xray2ct), not {self.data.task}")
        if not projection and self.xray is not None:
            raise ValueError(f"xray: settings for data.task: xray2ct in a config with data.task: {self.data.task}")
        if projection and self.xray is None:
            object.__setattr__(self, "xray", XrayConfig())
        return self

    @property
    def experiment_name(self) -> str:
        """MLflow experiment name: explicit, else the config's name."""
        return self.tracking.experiment or self.name
