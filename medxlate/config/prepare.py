"""Typed, frozen configuration of ``medxlate prepare`` (hospital export -> dataset).

Every section rejects unknown keys. Series-description patterns are Python regular expressions,
matched with ``re.search`` ignoring case. Defaults reproduce the behaviour of ``prepare`` without a
config: a manifest of NIfTI pairs that already share their grid, no registration, body masks from
the CT, splits taken from the manifest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from medxlate.config.bounds import Count, Threads
from medxlate.config.schema import _Frozen

DEFAULT_EXCLUDE = (r"localizer|localiser|scout|topogram|surview|scanogram|survey|pilot",)


class SeriesRule(_Frozen):
    """Which series may play one role (source or target).

    Attributes:
        modality: DICOM Modality (``CT``, ``MR``...), compared case-insensitively.
        include: A series qualifies only if its description matches at least one of these
            patterns (empty: any description).
        exclude: A series is dropped if its description matches any of these patterns.
        min_slices: Series with fewer image instances are dropped (localizers, single slices).
    """

    modality: str = Field(min_length=1)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    min_slices: int = Field(default=8, ge=1)

    @field_validator("modality")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip().upper()

    @field_validator("include", "exclude")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {e}") from e
        return value


class PairingConfig(_Frozen):
    """How source and target series of one patient are paired (DICOM input).

    Patients are matched by PatientID, or by PatientName + PatientBirthDate when the ID is empty.
    Among the qualifying pairs of a patient the one with the closest study dates wins, then the
    one with most source slices, then most target slices; a tie on all three is *ambiguous*.

    Attributes:
        source: Rule for the source series (e.g. the CT).
        target: Rule for the target series (e.g. the MR).
        date_window_days: Largest allowed distance between the two study dates; ``None`` for any
            (then a missing StudyDate does not disqualify a pair).
        ambiguous: ``pick`` keeps the deterministic choice (by SeriesNumber) and reports it;
            ``skip`` leaves the patient out and reports it.
    """

    source: SeriesRule = Field(default_factory=lambda: SeriesRule(modality="CT"))
    target: SeriesRule = Field(default_factory=lambda: SeriesRule(modality="MR"))
    date_window_days: int | None = Field(default=None, ge=0)
    ambiguous: Literal["pick", "skip"] = "pick"


class LoadingConfig(_Frozen):
    """Options passed to the DICOM series loader for irregular series.

    Attributes:
        on_irregular: Non-uniform spacing, gaps or duplicate positions: ``error`` or ``resample``.
        on_tilt: Gantry tilt: ``error`` or ``resample`` onto an orthogonal grid.
    """

    on_irregular: Literal["error", "resample"] = "error"
    on_tilt: Literal["error", "resample"] = "error"


def _check_levels(shrink_factors: tuple[int, ...], smoothing_sigmas_mm: tuple[float, ...]) -> None:
    """One smoothing sigma per shrink factor, at least one level, factors >= 1 and sigmas >= 0."""
    if len(shrink_factors) != len(smoothing_sigmas_mm) or not shrink_factors:
        raise ValueError(
            f"shrink_factors {list(shrink_factors)} and smoothing_sigmas_mm "
            f"{list(smoothing_sigmas_mm)} must be non-empty and of equal length (one per level)"
        )
    if min(shrink_factors) < 1 or min(smoothing_sigmas_mm) < 0:
        raise ValueError("shrink_factors must be >= 1 and smoothing_sigmas_mm >= 0")


class DeformableConfig(_Frozen):
    """The B-spline step of ``method: deformable`` (after the rigid step; SimpleITK, Mattes MI, L-BFGS-B).

    Multi-resolution: one image level per shrink factor, the same control-point mesh throughout.
    The mutual information's random samples use the registration's ``seed``, ``histogram_bins`` and
    ``threads``.

    Attributes:
        grid_spacing_mm: Control-point spacing (larger: smoother, fewer parameters).
        iterations: L-BFGS-B iterations per level.
        sampling_fraction: Fraction of source voxels sampled per level (seeded).
        shrink_factors: Image shrink factor per level, coarse to fine.
        smoothing_sigmas_mm: Gaussian smoothing per level, in mm.
    """

    grid_spacing_mm: float = Field(default=40.0, ge=5.0, le=1000.0)
    iterations: Count = 30
    sampling_fraction: float = Field(default=0.1, gt=0.0, le=1.0)
    shrink_factors: tuple[int, ...] = (2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 0.0)

    @model_validator(mode="after")
    def _levels_agree(self) -> DeformableConfig:
        _check_levels(self.shrink_factors, self.smoothing_sigmas_mm)
        return self


class RegistrationConfig(_Frozen):
    """Alignment of the target onto the source grid (SimpleITK registration framework).

    ``method: none`` only resamples (scanner coordinates are trusted); ``rigid`` optimises an
    Euler3D transform on Mattes mutual information, multi-resolution, with seeded random sampling
    (deterministic); ``deformable`` runs that rigid step and then a B-spline on top (see
    :class:`DeformableConfig`). Either way the final Mattes metric is recorded per case.

    Attributes:
        method: ``none``, ``rigid`` or ``deformable``.
        initializer: Start position: the scanner geometry as is (``none``, rotation about the
            source's centre), image centres aligned (``geometry``) or intensity centroids
            (``moments``; poor for CT, whose air is negative).
        histogram_bins: Mattes histogram bins.
        sampling_fraction: Fraction of source voxels sampled per iteration (seeded).
        iterations: Iterations per resolution level.
        learning_rate: Initial step of the regular-step gradient descent (physical-shift scales).
        min_step: Convergence: stop when the step falls below this.
        shrink_factors: Image shrink factor per level, coarse to fine.
        smoothing_sigmas_mm: Gaussian smoothing per level, in mm.
        seed: Seed of the metric's random sampling (>= 1: SimpleITK reads 0 as "wall clock").
        threads: Threads used by SimpleITK for registration; fixed so the result does not depend
            on the machine (``None``: all cores, faster but may differ in the last digits).
        deformable: The B-spline step (used by ``method: deformable`` only).
    """

    method: Literal["none", "rigid", "deformable"] = "none"
    initializer: Literal["none", "geometry", "moments"] = "none"
    histogram_bins: int = Field(default=32, ge=8, le=256)
    sampling_fraction: float = Field(default=0.25, gt=0.0, le=1.0)
    iterations: Count = 100
    learning_rate: float = Field(default=2.0, gt=0.0)
    min_step: float = Field(default=1e-3, gt=0.0)
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    seed: int = Field(default=1, ge=1)
    threads: Threads | None = 1
    deformable: DeformableConfig = Field(default_factory=DeformableConfig)

    @model_validator(mode="after")
    def _levels_agree(self) -> RegistrationConfig:
        _check_levels(self.shrink_factors, self.smoothing_sigmas_mm)
        return self


class MaskConfig(_Frozen):
    """Body mask per case, computed from the CT (source or target) unless the input brings one.

    Attributes:
        threshold_hu: CT voxels above it are tissue candidates.
        restrict_to_target_fov: Drop voxels the target's field of view does not cover.
    """

    threshold_hu: float = -500.0
    restrict_to_target_fov: bool = True


class SplitConfig(_Frozen):
    """Train/val/test assignment by patient (all cases of a patient in one split).

    Patients are ranked by a seeded hash of their cases' content and the first
    ``round(test_fraction * n)`` go to test, the next ``round(val_fraction * n)`` to val (at least
    one each when the fraction is positive and there are enough patients), the rest to train.
    Splits written in a NIfTI manifest are kept.
    """

    val_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _room_for_training(self) -> SplitConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(f"val_fraction + test_fraction is {self.val_fraction + self.test_fraction}; expected < 1")
        return self


class PrepareConfig(_Frozen):
    """Configuration of ``prepare`` (see the section classes).

    Attributes:
        name: Dataset name; default: the manifest's name, else the output folder's name (never a
            folder name of the hospital export, which may carry a patient name).
        grid_mismatch: NIfTI pairs on different grids: ``error`` (pairs are declared
            co-registered) or ``resample`` onto the source grid. DICOM targets are always resampled.
        ct_clip_min_hu: CT values below it (padding such as -2048 or -3024) are raised to it;
            ``None`` keeps them.
        on_case_error: ``raise`` (default): prepare every case it can, then raise listing the
            failures without writing dataset.json; ``skip``: write the dataset without them.
        scan_workers: Parallel workers for the DICOM header scan (``None``: automatic).
        allow_outside_paths: Read manifest files that lie outside the input folder (``..``, absolute
            paths, symlinks leading out). Off by default: such a path is refused; when on, dataset.json
            records it (``prepare.allow_outside_paths`` and how many files were read from outside).
    """

    name: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    pairing: PairingConfig = Field(default_factory=PairingConfig)
    loading: LoadingConfig = Field(default_factory=LoadingConfig)
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)
    mask: MaskConfig = Field(default_factory=MaskConfig)
    splits: SplitConfig = Field(default_factory=SplitConfig)
    grid_mismatch: Literal["error", "resample"] = "error"
    ct_clip_min_hu: float | None = -1024.0
    on_case_error: Literal["raise", "skip"] = "raise"
    scan_workers: Threads | None = None
    allow_outside_paths: bool = False

    def output_settings(self) -> dict[str, Any]:
        """The settings that change the files written for a case (part of each case's fingerprint)."""
        settings = self.model_dump(
            mode="json", include={"loading", "registration", "mask", "grid_mismatch", "ct_clip_min_hu"}
        )
        if self.registration.method == "none":  # optimiser settings do not matter then
            settings["registration"] = {"method": "none", "histogram_bins": self.registration.histogram_bins}
        elif self.registration.method == "rigid":  # nor the B-spline's (fingerprints of rigid datasets unchanged)
            settings["registration"].pop("deformable")
        return settings


def load_prepare_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> PrepareConfig:
    """Load and validate a prepare config (YAML), or the defaults when ``path`` is ``None``.

    Args:
        path: YAML file, or ``None`` for the defaults.
        overrides: Dotted keys to values applied before validation, e.g.
            ``{"registration.method": "rigid"}``.

    Returns:
        The frozen, validated config.

    Raises:
        ConfigError: listing every problem with its key path, the value found and what was expected.
    """
    from medxlate.config.loader import apply_overrides, read_yaml, validate_model

    raw = read_yaml(path) if path is not None else {}
    return validate_model(PrepareConfig, apply_overrides(raw, overrides), str(path or "<prepare config>"))
