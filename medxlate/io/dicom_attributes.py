"""Series-level attributes of an exported synthetic series: copied, Type 2, conditional, display window.

:func:`series_attributes` gives every attribute that is the same on each slice of the series written
by :func:`medxlate.io.dicom_export.save_dicom_series`. Conditional attributes (Type 1C/2C of
PS3.3) are written only where their condition holds for the series written, whatever the source
says:

* Laterality (General Series, 2C: required if the body part examined is a paired structure): left
  out for a body part that PS3.16 Annex L lists as unpaired (CHEST, HEAD, ABDOMEN, ...); otherwise
  (paired, unknown or no BodyPartExamined) written: the source's ``R``/``L``, else empty.
* PatientPosition (General Series, 2C: required for CT and MR images without a Patient
  Orientation Code Sequence, which is never written): always written, the source's or empty.
* Animal patients (Patient and Patient Study modules, 1C/2C: required if the patient is an animal,
  i.e. a Patient Species Description or Code Sequence is present): species, breed, neutered and
  responsible person or organisation are copied, the Type 2C ones written empty where the source lacks them; for a
  human patient none is written.
* SpecificCharacterSet (SOP Common, 1C): the source's, else ``ISO_IR 192`` (UTF-8).
* ReferencedSeriesSequence (Common Instance Reference, 1C: required if the instance references
  instances of another series): only with a source series (set by the writer).
* WindowCenter/WindowWidth (VOI LUT, 1C as a pair): always written, see :func:`display_window`.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np

#: Attributes copied from the source series (patient module, general study module, position).
COPIED = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "PatientPosition",
    "BodyPartExamined",
    "FrameOfReferenceUID",
    "PositionReferenceIndicator",
)
#: Type 2 attributes (present, possibly empty) of the modules written.
TYPE2_EMPTY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PositionReferenceIndicator",
    "SeriesNumber",
    "PatientPosition",
)
#: BodyPartExamined defined terms of unpaired structures (PS3.16 Annex L, as dicom3tools' dciodvfy has them).
UNPAIRED_BODY_PARTS = frozenset(
    [
        "ABDOMEN",
        "ABDOMENPELVIS",
        "AORTA",
        "BACK",
        "BLADDER",
        "BRAIN",
        "CEREBELLUM",
        "CERVIX",
        "CHEST",
        "CHESTABDOMEN",
        "CHESTABDPELVIS",
        "CIRCLEOFWILLIS",
        "COCCYX",
        "COLON",
        "CORONARYARTERY",
        "CSPINE",
        "CTSPINE",
        "DUODENUM",
        "ESOPHAGUS",
        "FACE",
        "GALLBLADDER",
        "HEAD",
        "HEADNECK",
        "HEART",
        "ILEUM",
        "ILIUM",
        "JAW",
        "JEJUNUM",
        "LARYNX",
        "LIVER",
        "LSPINE",
        "LSSPINE",
        "MAXILLA",
        "MEDIASTINUM",
        "MOUTH",
        "NECK",
        "NECKCHEST",
        "NECKCHESTABDOMEN",
        "NECKCHESTABDPELV",
        "NOSE",
        "PANCREAS",
        "PELVIS",
        "PENIS",
        "PHARYNX",
        "PROSTATE",
        "RECTUM",
        "SCALP",
        "SKULL",
        "SPINE",
        "SPLEEN",
        "SSPINE",
        "STERNUM",
        "STOMACH",
        "THYMUS",
        "THYROID",
        "TLSPINE",
        "TONGUE",
        "TRACHEA",
        "TSPINE",
        "URETER",
        "URETHRA",
        "UTERUS",
        "VAGINA",
        "VULVA",
        "WHOLEBODY",
    ]
)
_ANIMAL_1C = ("PatientSpeciesDescription", "PatientSpeciesCodeSequence", "ResponsiblePersonRole")
_ANIMAL_2C = (
    "PatientSexNeutered",  # Patient Study module
    "PatientBreedDescription",
    "PatientBreedCodeSequence",
    "BreedRegistrationSequence",
    "ResponsiblePerson",
    "ResponsibleOrganization",
)
#: CT display window: centre and width in HU (soft tissue), and its WindowCenterWidthExplanation.
CT_WINDOW = (40.0, 400.0, "SOFT TISSUE")
#: MR display window: this percentile range of the output's values.
MR_WINDOW_PERCENTILES = (1.0, 99.0)
_WINDOW_SAMPLE = 2_000_000  # voxels the MR percentiles are taken from (a regular subsample)


def _present(header: Any, keyword: str) -> bool:
    return keyword in header and header[keyword].value not in (None, "", [])


def conditional_attributes(header: Any) -> dict[str, Any]:
    """The source-dependent conditional attributes whose condition holds (see the module docstring).

    Args:
        header: The source series' first header (pydicom ``Dataset``), or None.

    Returns:
        Keyword -> value of every such attribute to write (Laterality, the animal patient ones).
    """
    header = header if header is not None else {}
    attrs: dict[str, Any] = {}
    body_part = str(header["BodyPartExamined"].value).strip().upper() if _present(header, "BodyPartExamined") else ""
    if body_part not in UNPAIRED_BODY_PARTS:
        laterality = str(header["Laterality"].value).strip().upper() if _present(header, "Laterality") else ""
        attrs["Laterality"] = laterality if laterality in ("R", "L") else ""
    if _present(header, "PatientSpeciesDescription") or _present(header, "PatientSpeciesCodeSequence"):
        attrs |= {k: header[k].value for k in _ANIMAL_1C if _present(header, k)}
        attrs |= {k: header[k].value if k in header else ("" if "Sequence" not in k else []) for k in _ANIMAL_2C}
    return attrs


def display_window(modality: str, values: np.ndarray) -> dict[str, Any]:
    """VOI LUT attributes: a default display window for the series.

    CT: the soft-tissue window (:data:`CT_WINDOW`). MR (arbitrary units): the
    :data:`MR_WINDOW_PERCENTILES` range of ``values`` (from a regular subsample of at most about
    two million voxels); a range narrower than 1 gets VOILUTFunction ``LINEAR_EXACT`` (``LINEAR``
    needs a width of at least 1). Values are in output units (after RescaleSlope/Intercept).

    Args:
        modality: ``"CT"`` or ``"MR"``.
        values: The output volume ``(X, Y, Z)`` in output units.

    Returns:
        WindowCenter, WindowWidth, WindowCenterWidthExplanation (and VOILUTFunction if not LINEAR).
    """
    if modality == "CT":
        center, width, name = CT_WINDOW
        return {"WindowCenter": f"{center:g}", "WindowWidth": f"{width:g}", "WindowCenterWidthExplanation": name}
    step = max(1, int(np.ceil((values.size / _WINDOW_SAMPLE) ** (1 / 3))))
    low, high = (float(v) for v in np.percentile(values[::step, ::step, ::step], MR_WINDOW_PERCENTILES))
    width = high - low if high > low else 1.0  # a constant volume: any window shows it
    attrs = {
        "WindowCenter": f"{(low + high) / 2:.6g}",
        "WindowWidth": f"{width:.6g}",
        "WindowCenterWidthExplanation": f"P{MR_WINDOW_PERCENTILES[0]:g}-P{MR_WINDOW_PERCENTILES[1]:g}",
    }
    if width < 1:  # LINEAR needs a width of at least 1; LINEAR_EXACT any positive width
        attrs["VOILUTFunction"] = "LINEAR_EXACT"
    return attrs


def series_attributes(modality: str, header: Any, model: str, series_number: int | None) -> dict[str, Any]:
    """Every attribute shared by the slices of the exported series except the pixel module's.

    Args:
        modality: ``"CT"`` or ``"MR"``.
        header: The source series' first header (pydicom ``Dataset``), or None for a new study.
        model: Which model made it (no patient identifiers).
        series_number: SeriesNumber; default: the source's + 1000 (or 1000).

    Returns:
        Keyword -> value, plus ``ReferencedSeriesUID`` (the source series, not an attribute) with
        a source.
    """
    from pydicom.uid import generate_uid

    from medxlate import __version__

    now = datetime.datetime.now()
    attrs: dict[str, Any] = dict.fromkeys(TYPE2_EMPTY, "")
    if header is not None:
        attrs |= {k: header.get(k) for k in COPIED if k in header}
        attrs["ReferencedSeriesUID"] = str(header.SeriesInstanceUID)
        source_number = header.get("SeriesNumber")
        base = int(source_number) if source_number not in (None, "") else 0
    else:
        attrs |= {"StudyInstanceUID": generate_uid(), "FrameOfReferenceUID": generate_uid(), "StudyID": "SYNTH"}
        attrs |= {"StudyDate": now.strftime("%Y%m%d"), "StudyTime": now.strftime("%H%M%S")}
        base = 0
    attrs |= conditional_attributes(header)
    attrs.setdefault("SpecificCharacterSet", "ISO_IR 192")
    description = f"SYNTHETIC {modality} by medxlate model {model}"
    attrs |= {
        "Modality": modality,
        "SeriesInstanceUID": generate_uid(),
        "SeriesNumber": series_number if series_number is not None else base + 1000,
        "SeriesDescription": description[:64],
        "SeriesDate": now.strftime("%Y%m%d"),
        "SeriesTime": now.strftime("%H%M%S"),
        "ContentDate": now.strftime("%Y%m%d"),
        "ContentTime": now.strftime("%H%M%S"),
        "DerivationDescription": (
            f"Synthetic {modality} translated by a neural network (medxlate {__version__}, model {model}); "
            "not acquired, not for diagnosis"
        )[:1024],
        "Manufacturer": "medxlate",
        "SoftwareVersions": f"medxlate {__version__}",
        "BurnedInAnnotation": "NO",
    }
    return attrs
