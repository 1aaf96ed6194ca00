"""Inference strategies: how a trained generator is run over a whole volume, and the one inferer builder.

A strategy is plain data stored in the checkpoint (``"inference"`` key) next to the generator spec,
so validation during training and the :class:`~medxlate.inference.Translator` run a model exactly the
same way:

* ``slices``: a 2D generator over every axial slice (2.5D with ``context_slices`` neighbours stacked
  as channels), MONAI :class:`~monai.inferers.SliceInferer`, one whole (padded) slice per window;
* ``sliding_window``: a 3D generator over overlapping ``roi_size`` windows, MONAI
  :class:`~monai.inferers.SlidingWindowInferer`, windows blended with a Gaussian
  (:func:`gaussian_weights`) or constant importance map. Volumes smaller than a window are padded
  with air (-1 in model units) and the output is cropped back by MONAI, so any volume size works.
* ``lift``: radiograph views -> a volume (X-ray -> CT). The record states the views' cone-beam
  geometry (:meth:`LiftStrategy.geometries`) and the output grid (:meth:`LiftStrategy.grid_affine`):
  a cube of ``size`` voxels over ``fov_mm``, RAS-oriented, centred on the isocentre at the world
  origin. The generator maps all views to the whole volume in one pass.

Checkpoints written before strategies were recorded load as ``slices`` with the preprocessing's
``context_slices`` (:func:`strategy_from_dict` with ``None``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from monai.inferers import SliceInferer, SlidingWindowInferer

from medxlate.errors import CheckpointError, ConfigError
from medxlate.progress import show_bar

__all__ = [
    "BLEND_MODES",
    "InferenceStrategy",
    "LiftInferer",
    "LiftStrategy",
    "SliceStrategy",
    "SlidingWindowStrategy",
    "build_inferer",
    "gaussian_weights",
    "strategy_from_dict",
    "strategy_to_dict",
]

AIR = -1.0  # padding value in model units (the window minimum: air for CT and MR)
BLEND_MODES = ("gaussian", "constant")
BlendMode = Literal["gaussian", "constant"]
SIGMA_SCALE = 0.125  # Gaussian sigma per axis as a fraction of the window side (MONAI's and nnU-Net's default)


@dataclass(frozen=True)
class SliceStrategy:
    """Slice-wise (2D / 2.5D) translation along the last (axial, superior) axis.

    Attributes:
        context_slices: Neighbours on each side stacked as channels (2.5D); 0 is plain 2D.
        sw_batch_size: Slices per forward pass.

    Raises:
        ConfigError: for a negative context or a batch below 1.
    """

    context_slices: int = 0
    sw_batch_size: int = 8
    kind: Literal["slices"] = "slices"

    def __post_init__(self) -> None:
        _check_int(self.context_slices, "context_slices", minimum=0)
        _check_int(self.sw_batch_size, "sw_batch_size", minimum=1)


@dataclass(frozen=True)
class SlidingWindowStrategy:
    """Overlapping 3D windows blended into the whole volume.

    Attributes:
        roi_size: Window size in voxels ``(X, Y, Z)`` on the model's grid; every entry must be a
            multiple of the generator's size multiple (checked when the model runs).
        overlap: Fraction of a window shared with its neighbour along each axis, in [0, 1).
        mode: ``"gaussian"`` weights window centres over borders (no seams); ``"constant"`` averages.
        sw_batch_size: Windows per forward pass (halved automatically on CUDA out-of-memory).

    Raises:
        ConfigError: for a bad size, overlap, mode or batch.
    """

    roi_size: tuple[int, int, int]
    overlap: float = 0.5
    mode: BlendMode = "gaussian"
    sw_batch_size: int = 4
    kind: Literal["sliding_window"] = "sliding_window"

    def __post_init__(self) -> None:
        roi = tuple(self.roi_size)
        if len(roi) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in roi):
            raise ConfigError(f"inference roi_size: expected three positive integers (X, Y, Z), got {list(roi)}")
        object.__setattr__(self, "roi_size", roi)
        if not 0.0 <= float(self.overlap) < 1.0:
            raise ConfigError(f"inference overlap: expected a fraction in [0, 1), got {self.overlap}")
        if self.mode not in BLEND_MODES:
            raise ConfigError(f"inference mode: expected one of {', '.join(BLEND_MODES)}, got {self.mode!r}")
        _check_int(self.sw_batch_size, "sw_batch_size", minimum=1)


@dataclass(frozen=True)
class LiftStrategy:
    """Views -> volume in one pass (X-ray -> CT), with the geometry the views were rendered with.

    Attributes:
        views: The views in input-channel order (``"PA"``, ``"LL"``... or angles in degrees).
        size: Voxels per side of the cubic output grid; also the detector's pixels per side.
        fov_mm: Field of view per side of the output grid (isotropic spacing ``fov_mm / size``).
        sdd_mm: Source-to-detector distance.
        sad_mm: Source-to-isocentre distance (the isocentre is the grid's centre).
        sw_batch_size: Cases per forward pass (kept for a uniform interface; one case is one pass).

    The detector's pixel spacing is ``fov_mm * sdd_mm / sad_mm / size``: the detector covers the
    grid's field at the isocentre plane.

    Raises:
        ConfigError: for an empty view list, a bad size or a distance that is not positive.
    """

    views: tuple[str | float, ...]
    size: int
    fov_mm: float
    sdd_mm: float
    sad_mm: float
    sw_batch_size: int = 1
    kind: Literal["lift"] = "lift"

    def __post_init__(self) -> None:
        views = tuple(self.views) if isinstance(self.views, (list, tuple)) else ()
        if not views:
            raise ConfigError(f"inference views: expected a non-empty list of views, got {self.views!r}")
        object.__setattr__(self, "views", views)
        _check_int(self.size, "size", minimum=1)
        _check_int(self.sw_batch_size, "sw_batch_size", minimum=1)
        for name in ("fov_mm", "sdd_mm", "sad_mm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"inference {name}: expected a positive number of mm, got {value!r}")
        self.geometries()  # validates the views and sad < sdd

    @property
    def spacing_mm(self) -> float:
        """Isotropic voxel spacing of the output grid."""
        return float(self.fov_mm) / self.size

    def geometries(self) -> list[Any]:
        """One :class:`medxlate.xray.Geometry` per view (detector ``size`` x ``size`` pixels)."""
        from medxlate.xray.geometry import Geometry

        pixel = float(self.fov_mm) * float(self.sdd_mm) / float(self.sad_mm) / self.size
        return [Geometry(self.sdd_mm, self.sad_mm, (self.size, self.size), pixel, view) for view in self.views]

    def grid_affine(self) -> torch.Tensor:
        """``(4, 4)`` float64 voxel -> world affine of the output grid: RAS, isotropic, centred on 0."""
        spacing = self.spacing_mm
        affine = torch.diag(torch.tensor([spacing, spacing, spacing, 1.0], dtype=torch.float64))
        affine[:3, 3] = -spacing * (self.size - 1) / 2
        return affine


class LiftInferer:
    """Runs a views -> volume generator on ``(B, V, S, S)`` views: ``network(views)``."""

    def __call__(self, inputs: torch.Tensor, network: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``(B, V, S, S)`` views in model units -> ``(B, 1, S, S, S)`` volume in model units."""
        return network(inputs)


InferenceStrategy = SliceStrategy | SlidingWindowStrategy | LiftStrategy
_KINDS: dict[str, type[SliceStrategy] | type[SlidingWindowStrategy] | type[LiftStrategy]] = {
    "slices": SliceStrategy,
    "sliding_window": SlidingWindowStrategy,
    "lift": LiftStrategy,
}


def _check_int(value: object, name: str, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"inference {name}: expected an integer >= {minimum}, got {value!r}")


def strategy_to_dict(strategy: InferenceStrategy) -> dict[str, Any]:
    """JSON-able record of a strategy (for checkpoints); lists instead of tuples."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(strategy).items()}


def strategy_from_dict(record: dict[str, Any] | None, context_slices: int = 0) -> InferenceStrategy:
    """Rebuild a strategy from a checkpoint record.

    Args:
        record: The checkpoint's ``"inference"`` value; ``None`` for checkpoints written before
            strategies were recorded, which were all slice-wise.
        context_slices: The preprocessing's context, used for such old checkpoints.

    Returns:
        The strategy.

    Raises:
        CheckpointError: if the record names an unknown kind or holds bad values.
    """
    if record is None:
        return SliceStrategy(context_slices=context_slices)
    kind = record.get("kind")
    if kind not in _KINDS:
        raise CheckpointError(
            f"checkpoint inference record: unknown kind {kind!r}; expected one of {', '.join(_KINDS)}"
        )
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in record.items()}
    try:
        return _KINDS[kind](**values)
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"checkpoint inference record {record} is not understood: {e}") from e


def build_inferer(
    strategy: InferenceStrategy, progress: bool = False
) -> SliceInferer | SlidingWindowInferer | LiftInferer:
    """The MONAI inferer that runs ``strategy`` (the one place inferers are built).

    For ``slices`` the window is a whole axial slice (``roi_size=(-1, -1)``: MONAI uses the input's
    in-plane size), so the caller pads slices to the generator's multiple first. Padding of volumes
    smaller than a window uses -1 (air in model units).

    Args:
        strategy: A :class:`SliceStrategy`, :class:`SlidingWindowStrategy` or :class:`LiftStrategy`.
        progress: Show MONAI's progress bar over batches (on stderr, and only on a terminal).

    Returns:
        An inferer called as ``inferer(inputs (1, C, X, Y, Z), network)`` (``lift``: ``(B, V, S, S)`` views).
    """
    if isinstance(strategy, LiftStrategy):
        return LiftInferer()
    if isinstance(strategy, SliceStrategy):
        return SliceInferer(
            spatial_dim=2,
            roi_size=(-1, -1),
            sw_batch_size=strategy.sw_batch_size,
            cval=AIR,
            progress=show_bar(progress),
        )
    inferer = SlidingWindowInferer(
        roi_size=strategy.roi_size,
        sw_batch_size=strategy.sw_batch_size,
        overlap=strategy.overlap,
        mode=strategy.mode,
        sigma_scale=SIGMA_SCALE,
        padding_mode="constant",
        cval=AIR,
        progress=show_bar(progress),
    )
    if strategy.mode == "gaussian":  # MONAI passes the map through unchanged (the window always fits: it pads)
        inferer.roi_weight_map = gaussian_weights(strategy.roi_size)
    return inferer


def gaussian_weights(roi_size: tuple[int, ...], sigma_scale: float = SIGMA_SCALE) -> torch.Tensor:
    """Importance map of a window: the product of one Gaussian per axis, ``sigma = sigma_scale * side``.

    MONAI's :func:`~monai.data.utils.compute_importance_map` computes the same Gaussian, then raises
    every weight below 1e-3 to 1e-3. In 3D the product of three tails falls below that over most of
    a window: 58 % of a 96 x 96 x 16 window (sigma 2 slices along Z) sat on that floor, where
    overlapping windows were averaged with equal weights, so a window's first voxels counted as much
    as its neighbour's and its borders showed as seams. Here the weights keep falling to the
    borders (at least ``exp(-1 / (8 sigma_scale**2))`` per axis, 3.4e-4 for 1/8: about 4e-11 at a
    window's corner, far above float32's smallest normal number), so every window fades out.

    Args:
        roi_size: Window side per axis, in voxels.
        sigma_scale: Sigma as a fraction of the side, per axis.

    Returns:
        ``roi_size``-shaped float32 weights in (0, 1], largest at the centre.
    """
    weights = torch.ones((), dtype=torch.float64)
    for side in roi_size:
        offset = torch.arange(side, dtype=torch.float64) - (side - 1) / 2  # distance to the centre
        axis = torch.exp(-0.5 * (offset / (sigma_scale * side)) ** 2)
        weights = weights[..., None] * axis  # (*roi_size[:k]) x (side,) -> (*roi_size[:k+1])
    return weights.float()
