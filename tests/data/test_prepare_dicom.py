"""prepare from a messy DICOM export: pairing, registration, unpaired report, id map, reruns."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medxlate.config.prepare import PairingConfig, PrepareConfig, RegistrationConfig, SeriesRule
from medxlate.data import read_dataset
from medxlate.data.prepare import run_prepare
from medxlate.data.verify import verify_dataset
from medxlate.errors import InputDataError
from tests.data import phantoms
from tests.data.dicom_tree import OFFSETS, PATIENTS, write_export

CONFIG = PrepareConfig(
    pairing=PairingConfig(target=SeriesRule(modality="MR", include=("t1",)), date_window_days=30),
    registration=RegistrationConfig(method="rigid", iterations=40, shrink_factors=(2, 1), smoothing_sigmas_mm=(2, 0)),
)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_export(tmp_path_factory.mktemp("hospital") / "export")


def _id_map(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["PatientID"]: row for row in csv.DictReader(f)}


def _identifier_strings() -> list[str]:
    found = []
    for patient in PATIENTS:
        found += [patient.patient_id, patient.birth_date, patient.accession, *patient.name.split("^")]
    return found


def test_messy_export(export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    report = run_prepare(export, tmp_path / "ds", CONFIG, id_map=tmp_path / "private" / "ids.csv")
    assert report.written == ("case_000", "case_001") and report.failed == ()
    assert any("2 file(s) skipped" in note for note in report.notes)  # truncated file and a text file
    rows = _id_map(tmp_path / "private" / "ids.csv")
    first, second, third = (rows[p.patient_id] for p in PATIENTS)
    assert third["status"] == "unpaired" and third["case_id"] == ""
    assert report.unpaired == (f"patient {third['patient']}: no MR series qualifies as target",)
    assert first["target_description"] == "t1_vibe_tra"  # the include pattern beats the t2's extra slices
    assert (second["target_study_date"], second["source_study_date"]) == ("20230305", "20230301")  # window
    assert first["source_description"] == "Thorax 3.0 B31f"  # not the localizer
    index = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    by_id = {case["id"]: case for case in index["cases"]}
    for row, offset in ((first, OFFSETS[0]), (second, OFFSETS[1])):
        record = by_id[row["case_id"]]["registration"]
        assert record["metric"] == "mattes_mi" and record["value"] < record["initial_value"]
        np.testing.assert_allclose(record["translation_mm"], offset, atol=1.0)
        target = nib.load(tmp_path / "ds" / "cases" / row["case_id"] / "target.nii.gz")
        assert target.shape == phantoms.CT_SHAPE
    assert {case["split"] for case in index["cases"]} == {"train", "val"}
    assert verify_dataset(tmp_path / "ds") == []
    text = json.dumps(index) + "\n".join(r.getMessage() for r in caplog.records) + report.summary()
    for secret in _identifier_strings():
        assert secret.lower() not in text.lower()


def test_rerun_skips_unchanged_cases(export: Path, tmp_path: Path) -> None:
    run_prepare(export, tmp_path / "ds", CONFIG)
    files = sorted((tmp_path / "ds").rglob("*.nii.gz"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    index = (tmp_path / "ds" / "dataset.json").read_bytes()
    report = run_prepare(export, tmp_path / "ds", CONFIG)
    assert report.written == () and report.unchanged == ("case_000", "case_001")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert (tmp_path / "ds" / "dataset.json").read_bytes() == index


def test_a_failing_series_is_reported_without_identifiers(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medxlate.io.load

    real = medxlate.io.load.load_series

    def failing(info: object, **kwargs: object) -> object:
        if getattr(info, "description", "") == "T1 FLASH":
            path = info.files[0]  # type: ignore[attr-defined]
            raise InputDataError(f"DICOM series in {path.parent}: slice gap at {path} ({PATIENTS[1].name})")
        return real(info, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(medxlate.io.load, "load_series", failing)
    report = run_prepare(export, tmp_path / "ds", CONFIG.model_copy(update={"on_case_error": "skip"}))
    (message,) = report.failed
    assert "slice gap at <redacted> (<redacted>)" in message and "DICOM series in <redacted>" in message
    assert message.startswith(("case_000 (patient P", "case_001 (patient P"))
    assert len(read_dataset(tmp_path / "ds").cases) == 1


def test_no_pair_at_all(tmp_path: Path) -> None:
    root = write_export(tmp_path / "export")
    strict = CONFIG.model_copy(update={"pairing": PairingConfig(target=SeriesRule(modality="PT"))})
    with pytest.raises(InputDataError, match=r"no source/target pair found \(3 patient\(s\) unpaired\)"):
        run_prepare(root, tmp_path / "ds", strict)
    assert not (tmp_path / "ds").exists()
