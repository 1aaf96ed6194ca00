"""Conditional attributes and the display window of an exported series, checked with dciodvfy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor

from medxlate.io import load_volume
from medxlate.io.dicom_export import save_dicom_series
from tests.dicom_factory import write_ct_series
from tests.io.test_dicom_export import validation_errors

STUDY = {"StudyTime": "101500", "StudyID": "42"}


def _source(folder: Path, extra: dict[str, str]) -> Path:
    values = np.random.default_rng(0).integers(-1000, 1500, size=(6, 5, 2)).astype(np.float64)
    write_ct_series(folder, values, spacing=(0.8, 0.9, 2.0), extra=extra)
    return folder


# (source attributes, Laterality expected in the export: None = absent)
CASES = {
    "chest, no laterality (the real series)": ({"BodyPartExamined": "CHEST", **STUDY}, None),
    "chest, no laterality, no study time/id": ({"BodyPartExamined": "CHEST"}, None),
    "chest with a laterality (invalid in the source)": ({"BodyPartExamined": "CHEST", "Laterality": "R"}, None),
    "head": ({"BodyPartExamined": "HEAD", **STUDY}, None),
    "no body part": ({}, ""),
    "no body part, laterality": ({"Laterality": "L", **STUDY}, "L"),
    "paired body part": ({"BodyPartExamined": "KNEE"}, ""),
    "paired body part, laterality": ({"BodyPartExamined": "KNEE", "Laterality": "R", **STUDY}, "R"),
    "unknown body part, bad laterality": ({"BodyPartExamined": "THORAX", "Laterality": "B"}, ""),
}


@pytest.mark.parametrize("case", list(CASES))
def test_conditional_attributes_hold_their_condition(case: str, tmp_path: Path, dciodvfy: str) -> None:
    extra, laterality = CASES[case]
    source = _source(tmp_path / "src", extra)
    modality = "CT" if "head" in case else "MR"
    files = save_dicom_series(load_volume(source) * 0.5, tmp_path / "out", modality=modality, source=source, model="m")
    assert validation_errors(dciodvfy, [files[0]]) == []
    out = pydicom.dcmread(files[0], stop_before_pixels=True)
    if laterality is None:
        assert "Laterality" not in out
    else:
        assert out.Laterality == laterality
    assert out.get("BodyPartExamined") == extra.get("BodyPartExamined")
    for keyword in STUDY:  # Type 2: copied, else present and empty
        assert out[keyword].value == extra.get(keyword, "")
    assert out.PatientPosition == ""  # 2C for CT/MR without a Patient Orientation Code Sequence: present


def test_an_animal_patient_keeps_its_species(tmp_path: Path, dciodvfy: str) -> None:
    animal = {"PatientSpeciesDescription": "Canis lupus familiaris", "ResponsiblePerson": "Doe^John"}
    source = _source(tmp_path / "src", {"BodyPartExamined": "ABDOMEN", **animal, "ResponsiblePersonRole": "OWNER"})
    files = save_dicom_series(load_volume(source), tmp_path / "out", modality="CT", source=source, model="m")
    assert validation_errors(dciodvfy, [files[0]]) == []
    out = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert out.PatientSpeciesDescription == animal["PatientSpeciesDescription"]
    assert out.ResponsiblePerson == "Doe^John" and out.ResponsiblePersonRole == "OWNER"
    assert out.PatientBreedDescription == "" and out.PatientSexNeutered == ""  # 2C: present, empty
    human = pydicom.dcmread(
        save_dicom_series(load_volume(source), tmp_path / "again", modality="CT", source=None, model="m")[0]
    )
    assert "PatientSpeciesDescription" not in human and "PatientBreedDescription" not in human


def _window(file: Path) -> tuple[float, float, str, str]:
    ds = pydicom.dcmread(file, stop_before_pixels=True)
    return float(ds.WindowCenter), float(ds.WindowWidth), ds.WindowCenterWidthExplanation, ds.get("VOILUTFunction", "")


def test_display_window_per_modality(tmp_path: Path, dciodvfy: str) -> None:
    affine = torch.diag(torch.tensor([-1.5, 1.25, 3.0, 1.0], dtype=torch.float64))
    rng = np.random.default_rng(1)
    mr = np.concatenate([rng.uniform(200, 1200, 990), [0.0] * 5, [9000.0] * 5]).reshape(10, 10, 10)
    files = save_dicom_series(
        MetaTensor(torch.from_numpy(mr), affine=affine), tmp_path / "mr", modality="MR", source=None, model="m"
    )
    low, high = np.percentile(mr, [1, 99])
    center, width, explanation, function = _window(files[0])
    torch.testing.assert_close(
        torch.tensor([center, width], dtype=torch.float64),
        torch.tensor([(low + high) / 2, high - low], dtype=torch.float64),
        rtol=1e-5,
        atol=0.0,
    )
    assert 200 < low < high < 1200 and explanation == "P1-P99" and function == ""  # outliers do not widen it
    assert _window(files[-1]) == _window(files[0])  # one window for the series
    ct = save_dicom_series(
        MetaTensor(torch.from_numpy(mr - 1000), affine=affine), tmp_path / "ct", modality="CT", source=None, model="m"
    )
    assert _window(ct[0]) == (40.0, 400.0, "SOFT TISSUE", "")
    small = save_dicom_series(
        MetaTensor(torch.from_numpy(mr / 1e4), affine=affine), tmp_path / "small", modality="MR", source=None, model="m"
    )
    center, width, _, function = _window(small[0])
    assert 0 < width < 1 and function == "LINEAR_EXACT"  # LINEAR needs a width of at least 1
    assert validation_errors(dciodvfy, [files[0], ct[0], small[0]]) == []
