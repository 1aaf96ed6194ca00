"""Is this file a radiograph of the kind the X-ray -> CT model was trained for? One record per check.

An X-ray -> CT model is trained on DRRs rendered from chest CT (X2CT-GAN's geometry, attenuation at a
chest spectrum, :mod:`medxlate.xray.attenuation`): frontal or lateral projection radiographs of the
chest, in the views it was trained with. A CT localizer, an axial CT or MR slice, a radiograph of a
hand or a lateral given to a PA model still map onto the detector and produce a CT, so they are
checked by name before any mapping. :func:`check_radiograph` returns one :class:`DomainCheck` per
measure (the per-case domain report reuses these records):

* ``modality``: ``Modality`` one of :data:`RADIOGRAPH_MODALITIES`; refused otherwise (CT, MR, OT...),
  a warning when not stated;
* ``image_type``: no :data:`LOCALIZER_TYPES` value in ``ImageType`` (a CT/MR planning image); refused;
* ``body_part``: ``BodyPartExamined`` one of the model's parts (:data:`CHEST_BODY_PARTS`); a warning
  when missing or another part (headers often omit it or use local terms);
* ``view``: ``ViewPosition`` equal to the model's view at that position (``LATERAL`` is not ``PA``,
  nor ``LL``: the side decides the mirror image); refused, a warning when not stated;
* ``photometric``: MONOCHROME1/2 or a greyscale image, recorded (colour and palette-colour files are
  refused when read, :func:`medxlate.xray.load_radiograph`: they have no grey pixels to map);
* ``blank``: pixel values that vary; a constant image (e.g. all zero) is refused.

:func:`enforce_checks` turns refusals into one :class:`~medxlate.errors.InputDataError` line naming
the file and every refused measure (found, expected), unless ``force`` is given (then each is a
warning, and the records keep the verdict ``refuse`` for provenance); warnings are logged in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from medxlate.errors import InputDataError
from medxlate.xray.geometry import Geometry
from medxlate.xray.radiographs import Radiograph

__all__ = [
    "CHEST_BODY_PARTS",
    "LOCALIZER_TYPES",
    "RADIOGRAPH_MODALITIES",
    "DomainCheck",
    "check_radiograph",
    "enforce_checks",
]

_LOG = logging.getLogger(__name__)

RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "RG")  # computed, digital, "DR" as some vendors write it, film
LOCALIZER_TYPES = ("LOCALIZER", "SCOUT", "TOPOGRAM")  # ImageType values of CT/MR planning images
CHEST_BODY_PARTS = ("CHEST", "THORAX", "LUNG")  # BodyPartExamined of the chest (the DRRs' domain)

Verdict = Literal["ok", "warn", "refuse"]


@dataclass(frozen=True)
class DomainCheck:
    """One measure of a radiograph compared with the model's domain.

    Attributes:
        measure: what was checked (``modality``, ``image_type``, ``body_part``, ``view``,
            ``photometric``, ``blank``).
        expected: what the model's domain holds, in words.
        found: what the file holds (``"not stated"`` when absent).
        verdict: ``ok``, ``warn`` (translated, with a warning) or ``refuse`` (not translated unless forced).
    """

    measure: str
    expected: str
    found: str
    verdict: Verdict

    def as_dict(self) -> dict[str, str]:
        """The record as a JSON-ready dict (for sidecars and reports)."""
        return asdict(self)

    def describe(self) -> str:
        """``"<measure> <found> (expected <expected>)"``, for messages."""
        return f"{_LABELS.get(self.measure, self.measure)} {self.found} (expected {self.expected})"


_LABELS = {
    "modality": "Modality",
    "image_type": "ImageType",
    "body_part": "BodyPartExamined",
    "view": "ViewPosition",
    "photometric": "photometric",
    "blank": "pixels",
}
_MISSING = "not stated"


def _either(values: Sequence[str]) -> str:
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def _stated(record: dict[str, Any], key: str) -> str | None:
    value = str(record.get(key) or "").strip().upper()
    return value or None


def _modality(found: str | None) -> DomainCheck:
    expected = _either(RADIOGRAPH_MODALITIES)
    if found is None:
        return DomainCheck("modality", expected, _MISSING, "warn")
    return DomainCheck("modality", expected, found, "ok" if found in RADIOGRAPH_MODALITIES else "refuse")


def _image_type(values: Sequence[str]) -> DomainCheck:
    found = "\\".join(values) if values else _MISSING
    planning = any(value in LOCALIZER_TYPES for value in values)
    return DomainCheck("image_type", f"no {'/'.join(LOCALIZER_TYPES)}", found, "refuse" if planning else "ok")


def _body_part(found: str | None, body_parts: Sequence[str]) -> DomainCheck:
    expected = _either(body_parts)
    if found is None:
        return DomainCheck("body_part", expected, _MISSING, "warn")
    return DomainCheck("body_part", expected, found, "ok" if found in body_parts else "warn")


def _view(found: str | None, geometry: Geometry) -> DomainCheck:
    if not isinstance(geometry.view, str):  # an angle: no ViewPosition names it
        return DomainCheck("view", f"{geometry.view:g} deg (no named view)", found or _MISSING, "ok")
    expected = geometry.view.upper()
    if found is None:
        return DomainCheck("view", expected, _MISSING, "warn")
    return DomainCheck("view", expected, found, "ok" if found == expected else "refuse")


def _photometric(record: dict[str, Any]) -> DomainCheck:
    found = str(record.get("photometric") or f"{record.get('format', 'image')} mode {record.get('mode')}")
    return DomainCheck("photometric", "MONOCHROME1/MONOCHROME2 or a greyscale image", found, "ok")


def _blank(image: Radiograph) -> DomainCheck:
    low, high = float(image.pixels.min()), float(image.pixels.max())
    if low == high:
        return DomainCheck("blank", "values that vary", f"all {low:g} (a constant image)", "refuse")
    return DomainCheck("blank", "values that vary", f"{low:g} to {high:g}", "ok")


def check_radiograph(
    image: Radiograph, geometry: Geometry, body_parts: Sequence[str] = CHEST_BODY_PARTS
) -> list[DomainCheck]:
    """Compare a loaded radiograph's header and pixels with the model's domain (see the module table).

    Args:
        image: the radiograph (:func:`medxlate.xray.load_radiograph`); its ``record`` holds the
            header facts (``modality``, ``image_type``, ``body_part``) for DICOM files.
        geometry: the view the model expects for this file (its ``view`` is compared with ViewPosition).
        body_parts: the ``BodyPartExamined`` values of the model's domain (upper case).

    Returns:
        One :class:`DomainCheck` per measure, in the order modality, image_type, body_part, view,
        photometric, blank. An image file (PNG/TIFF) states no modality, body part or view: those
        are ``warn`` with ``found`` ``"not stated"``.
    """
    record = image.record
    return [
        _modality(_stated(record, "modality")),
        _image_type([str(v).strip().upper() for v in record.get("image_type") or []]),
        _body_part(_stated(record, "body_part"), [part.upper() for part in body_parts]),
        _view(image.view, geometry),
        _photometric(record),
        _blank(image),
    ]


def enforce_checks(checks: Sequence[DomainCheck], path: str | Path, force: bool = False) -> None:
    """Refuse a radiograph with a ``refuse`` check, and log its ``warn`` checks in one line.

    Args:
        checks: :func:`check_radiograph`'s records for ``path``.
        path: the file, named in the error or warning.
        force: translate it anyway: refusals are logged as warnings instead of raised.

    Raises:
        InputDataError: one line naming the file and each refused measure (found, expected), when
            ``force`` is false.
    """
    refused = "; ".join(check.describe() for check in checks if check.verdict == "refuse")
    if refused and not force:
        raise InputDataError(
            f"radiograph {path}: not what the model was trained on: {refused}; "
            "--force (force=True) translates it anyway"
        )
    if refused:
        _LOG.warning("radiograph %s: translated although forced past: %s", Path(path).name, refused)
    warned = "; ".join(check.describe() for check in checks if check.verdict == "warn")
    if warned:
        _LOG.warning("radiograph %s: unlike the model's training domain: %s", Path(path).name, warned)
