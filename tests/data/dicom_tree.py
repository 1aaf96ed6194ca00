"""A messy synthetic hospital export: patients with CT and MR on different grids, plus clutter.

Built with :func:`tests.dicom_factory.write_ct_series` from the analytic phantom of
:mod:`tests.data.phantoms`. Folder names carry patient names, as real exports often do, so tests can
check that no path below the export leaks either.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.data import phantoms
from tests.dicom_factory import write_ct_series

BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
MR_SPACING = (3.5, 3.5, 4.5)
MR_ORIGIN_LPS = (50.0, 50.0, -30.0)  # RAS (-50, -50, -30), as phantoms.mr_affine()
CT_SPACING = (3.0, 3.0, 4.0)
CT_ORIGIN_LPS = (-48.0, -48.0, -32.0)


@dataclass(frozen=True)
class Patient:
    """Fake identifiers of one patient (distinctive strings, so a grep finds any leak)."""

    name: str
    patient_id: str
    birth_date: str
    accession: str
    institution: str

    def fields(self, study_date: str, accession_suffix: str = "") -> dict[str, str]:
        """DICOM attributes of one study of this patient."""
        return {
            "PatientBirthDate": self.birth_date,
            "AccessionNumber": f"{self.accession}{accession_suffix}",
            "InstitutionName": self.institution,
            "StudyDate": study_date,
            "ReferringPhysicianName": "Physician^Fake",
        }


def ras_affine(
    spacing: Sequence[float], origin_lps: Sequence[float], row: Sequence[float], col: Sequence[float]
) -> np.ndarray:
    """The RAS affine a reader builds for a series written with these LPS parameters."""
    row_v, col_v = np.asarray(row, float), np.asarray(col, float)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = row_v * spacing[0], col_v * spacing[1]
    lps[:3, 2] = np.cross(row_v, col_v) * spacing[2]
    lps[:3, 3] = origin_lps
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_ct(folder: Path, patient: Patient, study_date: str, seed: int, **kwargs: object) -> list[Path]:
    """The phantom's CT: 32 x 32 x 16 at 3 x 3 x 4 mm, standard axial orientation."""
    affine = ras_affine(CT_SPACING, CT_ORIGIN_LPS, (1, 0, 0), (0, 1, 0))
    volume = phantoms.ct_on_grid(phantoms.CT_SHAPE, affine)
    return write_ct_series(
        folder,
        volume,
        spacing=CT_SPACING,
        origin=CT_ORIGIN_LPS,
        seed=seed,
        patient_name=patient.name,
        patient_id=patient.patient_id,
        extra=patient.fields(study_date, "-CT"),
        **kwargs,  # type: ignore[arg-type]
    )


def write_mr(
    folder: Path,
    patient: Patient,
    study_date: str,
    seed: int,
    offset: np.ndarray,
    shape: tuple[int, int, int] = phantoms.MR_SHAPE,
    **kwargs: object,
) -> list[Path]:
    """The phantom's MR displaced by ``offset`` (RAS mm): another grid, spacing and orientation."""
    row, col = (-1, 0, 0), (0, -1, 0)
    affine = ras_affine(MR_SPACING, MR_ORIGIN_LPS, row, col)
    volume = phantoms.mr_on_grid(shape, affine, offset)
    return write_ct_series(
        folder,
        volume,
        spacing=MR_SPACING,
        origin=MR_ORIGIN_LPS,
        row_dir=row,
        col_dir=col,
        modality="MR",
        intercept=0.0,
        seed=seed,
        patient_name=patient.name,
        patient_id=patient.patient_id,
        extra=patient.fields(study_date, "-MR"),
        **kwargs,  # type: ignore[arg-type]
    )


def write_sr(path: Path, patient: Patient, study_date: str) -> Path:
    """A Basic Text SR object (no pixels) of the patient."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["sr", patient.patient_id, "sop"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = BASIC_TEXT_SR, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesDescription = "SR", "Radiology report"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["sr", patient.patient_id, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["sr", patient.patient_id, "series"])
    ds.PatientName, ds.PatientID = patient.name, patient.patient_id
    for keyword, value in patient.fields(study_date).items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


PATIENTS = (
    Patient("Zyxwab^Quorvin", "PX-98765-ZQ", "19450317", "ACC5551234", "Xylophon Clinic"),
    Patient("Plimsoll^Ottavia", "PX-22222-PO", "19601224", "ACC7770001", "Xylophon Clinic"),
    Patient("Brackwater^Ines", "PX-33333-BI", "19781102", "ACC8880002", "Harrowgate Infirmary"),
)
OFFSETS = (np.array([3.0, -2.0, 4.0]), np.array([-2.0, 1.5, 0.0]))


def write_export(root: Path, patients: Sequence[Patient] = PATIENTS) -> Path:
    """Two patients with CT + MR (t1 and t2; the second also an old t1 outside any 30-day window), a
    third with CT only; a localizer, an SR, a truncated file and a text file as clutter."""
    first, second, third = patients
    base = root / f"{first.name.replace('^', '_')}_{first.patient_id}"
    write_ct(
        base / "20230105_CT" / "s2", first, "20230105", seed=11, series_number=2, series_description="Thorax 3.0 B31f"
    )
    write_ct(
        base / "20230105_CT" / "s1", first, "20230105", seed=11, series_number=1, series_description="Topogram 0.6 T20s"
    )
    for path in sorted((base / "20230105_CT" / "s1").iterdir())[2:]:
        path.unlink()  # a two-image localizer
    write_mr(
        base / "20230110_MR" / "t1",
        first,
        "20230110",
        seed=12,
        offset=OFFSETS[0],
        series_number=5,
        series_description="t1_vibe_tra",
    )
    write_mr(
        base / "20230110_MR" / "t2",
        first,
        "20230110",
        seed=12,
        offset=OFFSETS[0],
        series_number=6,
        series_description="t2_tse_tra",
        shape=(29, 29, 18),
    )  # more slices, but not a t1
    write_sr(base / "SR" / "report.dcm", first, "20230111")
    other = root / "export 2" / second.name.replace("^", " ")
    write_ct(other / "ct", second, "20230301", seed=21, series_description="Abdomen 2.0 I30f")
    write_mr(other / "mr", second, "20230305", seed=22, offset=OFFSETS[1], series_description="T1 FLASH")
    write_mr(
        other / "mr_old",
        second,
        "20210101",
        seed=23,
        offset=OFFSETS[1],
        series_description="T1 FLASH",
        shape=(29, 29, 18),
    )  # more slices, but two years earlier
    write_ct(root / "export 2" / third.patient_id, third, "20230401", seed=31, series_description="Thorax")
    junk = root / "junk"
    junk.mkdir()
    donor = sorted((base / "20230110_MR" / "t1").iterdir())[0]
    (junk / "IM000001").write_bytes(donor.read_bytes()[:600])  # truncated copy
    (junk / "notes.txt").write_text(f"export of {first.name}\n")
    shutil.copy(donor, junk / ".hidden_copy")  # hidden files are not scanned
    return root
