"""Cone-beam X-ray geometry in millimetres, placed in the patient's RAS world frame.

Conventions (pinned by ``tests/xray/test_projector.py``):

* World coordinates are RAS millimetres, as in NIfTI and MONAI: ``x`` increases towards the
  patient's right, ``y`` towards anterior, ``z`` towards superior. A volume is placed in the world
  by its voxel -> world affine.
* The isocentre is the centre of the volume (the world position of voxel index ``(n - 1) / 2``).
* The gantry rotates about the patient's superior axis. ``angle_deg`` is the position of the
  source, measured from the PA position (source posterior) towards the patient's right:
  ``0`` = PA (source posterior, beam posterior -> anterior), ``90`` = LL (left lateral: source on the
  patient's right, detector on the left), ``180`` = source anterior, ``270`` = RL (right lateral).
* The detector is perpendicular to the central ray, at ``sdd_mm - sad_mm`` beyond the isocentre,
  its centre on the central ray. Image rows run from superior (row 0) to inferior.
* Image columns: for a numeric angle the image is the view *from the detector side* (looking
  through the detector towards the source). That is how radiographs are displayed for PA
  (patient's left on the image's right) and lateral views (LL: anterior on the image's left).
  ``"AP"`` is the one named view that differs: it is displayed as radiographs are (patient's
  left on the image's right), which is the mirror image of angle 180 seen from the detector side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from medxlate.errors import ConfigError

__all__ = ["NAMED_VIEWS", "Geometry"]

# DICOM View Position (0018,5101) codes -> (source angle in degrees, columns mirrored).
NAMED_VIEWS: dict[str, tuple[float, bool]] = {
    "PA": (0.0, False),
    "LL": (90.0, False),
    "AP": (180.0, True),
    "RL": (270.0, False),
}


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"Geometry: parameter '{name}' got {value!r}; expected a finite number > 0 (mm)")
    return float(value)


@dataclass(frozen=True)
class Geometry:
    """One X-ray view: a point source and a flat detector, distances in millimetres.

    Args:
        sdd_mm: source-to-detector distance.
        sad_mm: source-to-isocentre (source-to-axis) distance; ``0 < sad_mm < sdd_mm``.
        detector_shape: ``(rows, columns)`` of the detector in pixels.
        pixel_mm: detector pixel spacing, one number or ``(row, column)`` spacing in mm.
        view: a DICOM View Position code (``"PA"``, ``"AP"``, ``"LL"``, ``"RL"``, case-insensitive)
            or the source angle in degrees (see the module docstring).

    Raises:
        ConfigError: for a non-positive distance or spacing, ``sad_mm >= sdd_mm``, a bad detector
            shape or an unknown view name.

    Example:
        >>> g = Geometry(sdd_mm=1000.0, sad_mm=800.0, detector_shape=(64, 64), pixel_mm=2.0, view="PA")
        >>> round(g.magnification, 3)
        1.25
    """

    sdd_mm: float
    sad_mm: float
    detector_shape: tuple[int, int]
    pixel_mm: tuple[float, float] | float
    view: str | float = "PA"
    angle_deg: float = field(init=False)
    mirrored: bool = field(init=False)

    def __post_init__(self) -> None:
        sdd, sad = _positive("sdd_mm", self.sdd_mm), _positive("sad_mm", self.sad_mm)
        if sad >= sdd:
            raise ConfigError(
                f"Geometry: sad_mm={sad} must be smaller than sdd_mm={sdd} (the detector lies beyond the isocentre)"
            )
        shape = tuple(self.detector_shape) if isinstance(self.detector_shape, (tuple, list)) else ()
        if len(shape) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
            raise ConfigError(
                f"Geometry: parameter 'detector_shape' got {self.detector_shape!r}; "
                "expected (rows, columns), two ints > 0"
            )
        pixel = self.pixel_mm if isinstance(self.pixel_mm, (tuple, list)) else (self.pixel_mm, self.pixel_mm)
        if len(pixel) != 2:
            raise ConfigError(
                f"Geometry: parameter 'pixel_mm' got {self.pixel_mm!r}; expected a number or (row, column) mm"
            )
        pixel = (_positive("pixel_mm", pixel[0]), _positive("pixel_mm", pixel[1]))
        angle, mirrored = _resolve_view(self.view)
        object.__setattr__(self, "sdd_mm", sdd)
        object.__setattr__(self, "sad_mm", sad)
        object.__setattr__(self, "detector_shape", shape)
        object.__setattr__(self, "pixel_mm", pixel)
        object.__setattr__(self, "view", self.view.upper() if isinstance(self.view, str) else float(self.view))
        object.__setattr__(self, "angle_deg", angle)
        object.__setattr__(self, "mirrored", mirrored)

    @classmethod
    def x2ct_gan(cls, view: str | float = "PA") -> Geometry:
        """X2CT-GAN's DRR setting (Ying et al., CVPR 2019; their Plastimatch call).

        ``--sad 541 --sid 949``, a 320 x 320 detector covering 500 x 500 mm (1.5625 mm pixels); X2CT-GAN
        then resizes the DRRs to 128 x 128 (use ``detector_shape=(128, 128), pixel_mm=3.90625`` for
        the same field directly).

        Args:
            view: the view (default PA; X2CT-GAN's second view is lateral).

        Returns:
            The geometry.
        """
        return cls(sdd_mm=949.0, sad_mm=541.0, detector_shape=(320, 320), pixel_mm=500.0 / 320, view=view)

    @property
    def magnification(self) -> float:
        """Geometric magnification of the isocentre plane onto the detector, ``sdd / sad``."""
        return self.sdd_mm / self.sad_mm

    @property
    def field_mm(self) -> tuple[float, float]:
        """Detector size ``(height, width)`` in mm."""
        return (self.detector_shape[0] * self.pixel_mm[0], self.detector_shape[1] * self.pixel_mm[1])

    def frame(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit vectors of the view in RAS, isocentre-relative.

        Args:
            dtype: tensor dtype.

        Returns:
            ``(to_source, column_dir, row_dir)``: the direction from the isocentre to the source, the
            world direction of increasing image column and of increasing image row (inferior).
        """
        theta = math.radians(self.angle_deg)
        to_source = torch.tensor([math.sin(theta), -math.cos(theta), 0.0], dtype=dtype)
        superior = torch.tensor([0.0, 0.0, 1.0], dtype=dtype)
        column = torch.linalg.cross(to_source, superior)  # detector-side view, see module docstring
        if self.mirrored:
            column = -column
        return to_source, column, -superior

    def rays(self, isocentre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World positions of the source and of every detector pixel centre.

        Args:
            isocentre: ``(3,)`` world RAS position (mm) of the isocentre.

        Returns:
            ``(source (3,), pixels (rows, columns, 3))`` in RAS mm, in ``isocentre``'s dtype.
        """
        dtype = isocentre.dtype if isocentre.is_floating_point() else torch.float64
        to_source, column, row = (v.to(isocentre.device) for v in self.frame(dtype))
        source = isocentre + self.sad_mm * to_source
        centre = isocentre - (self.sdd_mm - self.sad_mm) * to_source
        rows, cols = self.detector_shape
        r = (torch.arange(rows, dtype=dtype, device=isocentre.device) - (rows - 1) / 2) * self.pixel_mm[0]
        c = (torch.arange(cols, dtype=dtype, device=isocentre.device) - (cols - 1) / 2) * self.pixel_mm[1]
        pixels = centre + r[:, None, None] * row + c[None, :, None] * column  # (rows, cols, 3)
        return source, pixels


def _resolve_view(view: str | float) -> tuple[float, bool]:
    if isinstance(view, str):
        key = view.upper()
        if key not in NAMED_VIEWS:
            from medxlate.models.registry import did_you_mean  # here: models imports this module

            hint = did_you_mean(key, NAMED_VIEWS)
            raise ConfigError(
                f"Geometry: unknown view {view!r};{hint} expected one of {', '.join(NAMED_VIEWS)} "
                "or an angle in degrees"
            )
        return NAMED_VIEWS[key]
    if isinstance(view, bool) or not isinstance(view, (int, float)) or not math.isfinite(view):
        raise ConfigError(f"Geometry: parameter 'view' got {view!r}; expected a view name or a finite angle in degrees")
    return float(view) % 360.0, False
