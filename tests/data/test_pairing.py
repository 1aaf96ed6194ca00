"""Pairing rules on series descriptions (no files): patient key, patterns, date window, tie-breaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from medxlate.config.prepare import PairingConfig, SeriesRule
from medxlate.data.pairing import pair_series


@dataclass(frozen=True)
class FakeSeries:
    series_uid: str
    modality: str
    description: str = "axial"
    study_date: Any = "20240101"
    series_number: Any = 1
    n_instances: int = 40
    is_image: bool = True
    flags: tuple[str, ...] = ()
    identifiers: dict[str, str] = field(default_factory=dict)


def patient(pid: str = "", name: str = "", birth: str = "") -> dict[str, str]:
    return {k: v for k, v in {"PatientID": pid, "PatientName": name, "PatientBirthDate": birth}.items() if v}


def test_closest_date_then_most_slices() -> None:
    ids = patient("P1")
    series = [
        FakeSeries("ct-a", "CT", study_date="20240101", n_instances=100, identifiers=ids),
        FakeSeries("ct-b", "CT", study_date="20240110", n_instances=50, identifiers=ids),
        FakeSeries("mr-a", "MR", study_date="20240112", n_instances=30, identifiers=ids),
        FakeSeries("mr-b", "MR", study_date="20240112", n_instances=60, identifiers=ids),
    ]
    result = pair_series(series, PairingConfig(date_window_days=30))
    (pair,) = result.pairs
    assert (pair.source.series_uid, pair.target.series_uid, pair.days) == ("ct-b", "mr-b", 2)
    assert pair.note is None and result.unpaired == ()


def test_description_patterns_and_localizers() -> None:
    ids = patient("P1")
    series = [
        FakeSeries("scout", "CT", description="Topogram 0.6 T20s", n_instances=2, identifiers=ids),
        FakeSeries("ct-big", "CT", description="Thorax 1.0 B70f lung", n_instances=300, identifiers=ids),
        FakeSeries("ct", "CT", description="Thorax 3.0 B31f", n_instances=100, identifiers=ids),
        FakeSeries("t2", "MR", description="t2_tse_tra", identifiers=ids),
        FakeSeries("t1", "MR", description="t1_vibe_tra", identifiers=ids),
    ]
    cfg = PairingConfig(
        source=SeriesRule(modality="ct", include=("thorax",), exclude=("lung", "topogram")),
        target=SeriesRule(modality="MR", include=(r"^t1",)),
    )
    (pair,) = pair_series(series, cfg).pairs
    assert (pair.source.series_uid, pair.target.series_uid) == ("ct", "t1")


def test_date_window_and_reports_without_identifiers() -> None:
    far = [
        FakeSeries("ct", "CT", study_date="20240101", identifiers=patient("Zyxwab-1")),
        FakeSeries("mr", "MR", study_date="20240301", identifiers=patient("Zyxwab-1")),
    ]
    only_ct = [FakeSeries("ct2", "CT", identifiers=patient("Zyxwab-2"))]
    no_date = [
        FakeSeries("ct3", "CT", study_date="", identifiers=patient("Zyxwab-3")),
        FakeSeries("mr3", "MR", identifiers=patient("Zyxwab-3")),
    ]
    result = pair_series(far + only_ct + no_date, PairingConfig(date_window_days=30))
    assert result.pairs == ()
    problems = sorted(r.problem for r in result.unpaired)
    assert problems[0] == "no CT/MR pair within 30 days (1 CT and 1 MR candidates; or a StudyDate is missing)"
    assert problems[2] == "no MR series qualifies as target"
    assert sorted(r.patient for r in result.unpaired) == ["P000", "P001", "P002"]
    assert "Zyxwab" not in repr([(r.patient, r.problem) for r in result.unpaired])
    assert len(pair_series(far + no_date, PairingConfig(date_window_days=None)).pairs) == 2


def test_patient_by_name_and_birth_date_when_id_missing() -> None:
    series = [
        FakeSeries("ct", "CT", identifiers=patient(name="Doe^Jane", birth="19700101")),
        FakeSeries("mr", "MR", identifiers=patient(name="DOE^JANE", birth="19700101")),
        FakeSeries("mr-other", "MR", identifiers=patient(name="Doe^Jane", birth="19800101")),
        FakeSeries("anon", "CT", identifiers={}),
    ]
    result = pair_series(series, PairingConfig())
    assert [(p.source.series_uid, p.target.series_uid) for p in result.pairs] == [("ct", "mr")]
    reasons = {r.patient: r.problem for r in result.unpaired}
    assert reasons["unidentified"].startswith("1 image series have neither PatientID")
    assert len(reasons) == 2


@pytest.mark.parametrize("ambiguous, paired", [("pick", True), ("skip", False)])
def test_ambiguous_ties(ambiguous: str, paired: bool) -> None:
    ids = patient("P1")
    series = [
        FakeSeries("ct", "CT", identifiers=ids),
        FakeSeries("mr-b", "MR", series_number=7, identifiers=ids),
        FakeSeries("mr-a", "MR", series_number=3, identifiers=ids),
    ]
    result = pair_series(series, PairingConfig(ambiguous=ambiguous))
    if paired:
        (pair,) = result.pairs
        assert pair.target.series_uid == "mr-a" and pair.note and pair.note.startswith("ambiguous: 2")
    else:
        assert result.pairs == () and result.unpaired[0].problem.startswith("ambiguous: 2")


def test_non_images_short_and_unloadable_series_are_not_candidates() -> None:
    ids = patient("P1")
    series = [
        FakeSeries("sr", "SR", is_image=False, n_instances=1, identifiers=ids),
        FakeSeries("ct", "CT", n_instances=3, identifiers=ids),
        FakeSeries("ct-gap", "CT", flags=("compressed", "gap"), identifiers=ids),
        FakeSeries("mr", "MR", identifiers=ids),
    ]
    (report,) = pair_series(series, PairingConfig(), unusable_flags=("gap", "mosaic")).unpaired
    assert report.problem == (
        "no CT series qualifies as source (1 CT series fewer than 8 slices; "
        "1 CT series flagged gap (cannot be loaded with these settings))"
    )
    assert pair_series(series, PairingConfig()).pairs[0].source.series_uid == "ct-gap"
