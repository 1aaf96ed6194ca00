"""No patient identifier leaves prepare + training: grep everything they write (issue 3, "Done when").

A DICOM export whose patients carry distinctive identifiers (names, IDs, birth dates, accession
numbers, institutions, UIDs; folder names with patient names) goes through ``prepare`` (with an id
map written outside the dataset), ``verify``, ``fingerprint`` and a short training run tracked in
MLflow on a temporary SQLite store. Then every file written below the test folder (dataset, training
output, ``mlflow.db``, the MLflow artifact folder), with gzip and zip members decompressed, plus every
captured log record and console line, is searched for every identifier. The id map, written outside,
must contain them: proof that the search would have found a leak.
"""

from __future__ import annotations

import gzip
import logging
import zipfile
from pathlib import Path

import pydicom
import pytest

from medxlate.config import validate_config
from medxlate.config.prepare import PairingConfig, PrepareConfig, SeriesRule
from medxlate.data.fingerprint import fingerprint_dataset
from medxlate.data.prepare import run_prepare
from medxlate.data.verify import verify_dataset
from medxlate.tracking import make_tracker
from medxlate.training import fit
from tests.conftest import tiny_config
from tests.data.dicom_tree import PATIENTS, write_export

GZIP_MAGIC = b"\x1f\x8b"


def _identifiers(export: Path) -> set[str]:
    """Every identifying string of the export: patient fields, their variants, and all UIDs."""
    found: set[str] = set()
    for patient in PATIENTS:
        found |= {patient.patient_id, patient.name, patient.name.replace("^", " "), *patient.name.split("^")}
        found |= {patient.birth_date, f"{patient.birth_date[:4]}-{patient.birth_date[4:6]}-{patient.birth_date[6:]}"}
        found |= {patient.accession, patient.institution}
    for path in export.rglob("*"):
        if path.is_file() and not path.name.startswith(".") and pydicom.misc.is_dicom(path):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:  # the truncated file
                continue
            found |= {str(ds.get(k)) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID") if k in ds}
            found |= {str(ds.FrameOfReferenceUID)} if "FrameOfReferenceUID" in ds else set()
    return found


def _contents(path: Path) -> list[bytes]:
    """The file's bytes, plus the decompressed content of gzip files and of zip members."""
    raw = path.read_bytes()
    parts = [raw, gzip.decompress(raw)] if raw[:2] == GZIP_MAGIC else [raw]
    if zipfile.is_zipfile(path):  # torch checkpoints are zip archives
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                member = archive.read(name)
                parts += [name.encode(), member]
                parts += [gzip.decompress(member)] if member[:2] == GZIP_MAGIC else []
    return parts


def _leaks(texts: dict[str, bytes], identifiers: set[str]) -> list[tuple[str, str]]:
    return [
        (where, secret)
        for where, blob in texts.items()
        for secret in identifiers
        if secret.lower().encode("utf-8") in blob.lower()
    ]


def test_no_identifier_leaves_prepare_and_training(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    export = write_export(tmp_path / "hospital" / "export")
    identifiers = _identifiers(export)
    assert len(identifiers) > 100  # names, IDs, dates, accessions, institutions and every UID
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # MLflow's artifact folder lands here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    config = PrepareConfig(
        pairing=PairingConfig(target=SeriesRule(modality="MR", include=("t1",)), date_window_days=30)
    )
    id_map = tmp_path / "private" / "ids.csv"
    report = run_prepare(export, work / "dataset", config, id_map=id_map)
    assert len(report.written) == 2 and len(report.unpaired) == 1
    assert verify_dataset(work / "dataset") == []
    fingerprint_dataset(work / "dataset")
    raw = tiny_config(work / "dataset", work / "train", epochs=1, decay_epochs=0)
    raw["tracking"] = {"backend": "mlflow", "log_checkpoint": True}  # the full checkpoint is grepped too
    result = fit(validate_config(raw), make_tracker("mlflow"))
    assert result.run_id is not None
    from medxlate.inference import Translator  # a translate sidecar of a dataset case is grepped too

    case = sorted((work / "dataset" / "cases").iterdir())[0]
    translated = work / "translated" / "synthetic.nii.gz"
    Translator.from_checkpoint(result.checkpoint, device="cpu").translate_file(case / "source.nii.gz", translated)
    assert (work / "translated" / "synthetic.json").is_file()

    written = sorted(p for p in work.rglob("*") if p.is_file())
    names = {p.relative_to(work).as_posix() for p in written}
    assert "mlflow.db" in names and any(n.startswith("dataset/cases/") for n in names)
    assert any(n.endswith("last.pt") and not n.startswith("train/") for n in names)  # the artifact copy
    texts = {str(p.relative_to(work)): b"\n".join(_contents(p)) for p in written}
    texts["<file names>"] = "\n".join(sorted(names)).encode()
    texts["<log records>"] = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records).encode()
    captured = capsys.readouterr()
    texts["<console>"] = (captured.out + captured.err + report.summary()).encode()
    assert _leaks(texts, identifiers) == []

    id_map_text = {"id map": id_map.read_bytes()}
    found = {secret for _, secret in _leaks(id_map_text, identifiers)}
    for patient in PATIENTS:  # the search works: the id map, outside the dataset, holds them all
        assert {patient.patient_id, patient.name, patient.birth_date, patient.accession, patient.institution} <= found
    assert sum(secret.startswith("1.2.826.0.1.3680043") for secret in found) >= 5  # study and series UIDs


def test_no_identifier_leaves_xray_training_on_a_dicom_tree(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """X-ray -> CT trains and evaluates on the export itself (no prepare): its errors, cache, checkpoint,
    MLflow store, evaluation files and logs hold no identifier either."""
    from medxlate.errors import InputDataError
    from medxlate.evaluation import evaluate
    from tests.training.test_lift import _xray_config

    caplog.set_level(logging.DEBUG)
    export = write_export(tmp_path / "hospital" / "export")
    identifiers = _identifiers(export)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    with pytest.raises(InputDataError, match=r"export: CT series ct_\d+: CT spans") as refused:
        fit(validate_config(_xray_config(export, work / "refused", items_per_volume=1, fov_mm=200.0)))  # too small
    raw = _xray_config(export, work / "train", items_per_volume=1)
    raw["tracking"] = {"backend": "mlflow"}
    result = fit(validate_config(raw), make_tracker("mlflow"))
    assert result.run_id is not None and set(result.per_case) <= {"ct_000", "ct_001", "ct_002", "ct_003"}
    evaluate(result.checkpoint, export, work / "evaluation", device="cpu")

    written = sorted(p for p in work.rglob("*") if p.is_file())
    names = {p.relative_to(work).as_posix() for p in written}
    assert "mlflow.db" in names and any(n.startswith("train/data_cache/xray_grid_") for n in names)
    texts = {str(p.relative_to(work)): b"\n".join(_contents(p)) for p in written}
    texts["<file names>"] = "\n".join(sorted(names)).encode()
    texts["<log records>"] = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records).encode()
    captured = capsys.readouterr()
    texts["<console>"] = (captured.out + captured.err + str(refused.value)).encode()
    assert _leaks(texts, identifiers) == []
