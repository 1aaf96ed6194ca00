"""Domain checks of radiographs (medxlate.xray.radiograph_domain) and the reading limits around them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from medxlate.errors import InputDataError
from medxlate.xray import Geometry
from medxlate.xray.radiograph_domain import DomainCheck, check_radiograph, enforce_checks
from medxlate.xray.radiograph_io import write_radiograph_dicom
from medxlate.xray.radiographs import Radiograph, load_radiograph
from tests.dicom_factory import write_ct_series
from tests.xray.radiograph_factory import write_cr

PA = Geometry(sdd_mm=1000.0, sad_mm=800.0, detector_shape=(16, 16), pixel_mm=2.5, view="PA")


def ramp(rows: int = 32, cols: int = 32) -> np.ndarray:
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (r * 40 + c * 7).astype(np.uint16)


def test_a_drr_written_by_medxlate_is_in_domain_but_states_no_body_part(tmp_path: Path) -> None:
    path = write_radiograph_dicom(torch.from_numpy(ramp().astype(np.float32)), tmp_path / "pa.dcm", 2.5, "PA")
    checks = check_radiograph(load_radiograph(path), PA)
    assert [c.as_dict() for c in checks[:5]] == [
        {"measure": "modality", "expected": "CR, DX, DR or RG", "found": "CR", "verdict": "ok"},
        {"measure": "image_type", "expected": "no LOCALIZER/SCOUT/TOPOGRAM", "found": "DERIVED\\SECONDARY",
         "verdict": "ok"},
        {"measure": "body_part", "expected": "CHEST, THORAX or LUNG", "found": "not stated", "verdict": "warn"},
        {"measure": "view", "expected": "PA", "found": "PA", "verdict": "ok"},
        {"measure": "photometric", "expected": "MONOCHROME1/MONOCHROME2 or a greyscale image",
         "found": "MONOCHROME1", "verdict": "ok"},
    ]  # fmt: skip
    assert checks[5].measure == "blank" and checks[5].verdict == "ok"


@pytest.mark.parametrize(
    ("write", "refused"),
    [
        (
            lambda d: write_ct_series(d, np.zeros((32, 32, 1)) + np.arange(32)[:, None, None], shuffle=False)[0],
            "Modality CT (expected CR, DX, DR or RG)",
        ),
        (
            lambda d: write_ct_series(
                d, np.arange(32.0)[:, None, None] * np.ones((32, 32, 1)), shuffle=False, modality="MR"
            )[0],
            "Modality MR (expected CR, DX, DR or RG)",
        ),
        (
            lambda d: write_ct_series(
                d,
                np.arange(32.0)[:, None, None] * np.ones((32, 32, 1)),
                shuffle=False,
                image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
            )[0],
            "Modality CT (expected CR, DX, DR or RG); ImageType ORIGINAL\\PRIMARY\\LOCALIZER "
            "(expected no LOCALIZER/SCOUT/TOPOGRAM)",
        ),
        (
            lambda d: write_cr(d / "lat.dcm", ramp(), ImagerPixelSpacing=[2.5, 2.5], ViewPosition="LATERAL"),
            "ViewPosition LATERAL (expected PA)",
        ),
        (
            lambda d: write_cr(d / "zero.dcm", np.zeros((32, 32), np.uint16), ImagerPixelSpacing=[2.5, 2.5]),
            "pixels all 65535 (a constant image) (expected values that vary)",  # MONOCHROME1: 0 shown as white
        ),
    ],
    ids=["axial-ct", "mr-slice", "ct-localizer", "lateral-for-pa", "all-zero"],
)
def test_wrong_kinds_are_refused_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture, write, refused) -> None:
    path = write(tmp_path)
    checks = check_radiograph(load_radiograph(path), PA)
    with pytest.raises(InputDataError) as raised:
        enforce_checks(checks, path)
    assert str(raised.value) == (
        f"radiograph {path}: not what the model was trained on: {refused}; --force (force=True) translates it anyway"
    )
    with caplog.at_level(logging.WARNING):
        enforce_checks(checks, path, force=True)  # forced: a warning naming the same, no error
    assert f"translated although forced past: {refused}" in caplog.text


def test_an_extremity_without_view_position_warns_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_cr(
        tmp_path / "hand.dcm", ramp(), Modality="DX", ImagerPixelSpacing=[0.2, 0.2], BodyPartExamined="HAND"
    )
    checks = check_radiograph(load_radiograph(path), PA)
    assert {c.measure: c.verdict for c in checks} == {
        "modality": "ok",
        "image_type": "ok",
        "body_part": "warn",
        "view": "warn",
        "photometric": "ok",
        "blank": "ok",
    }
    with caplog.at_level(logging.WARNING):
        enforce_checks(checks, path)
    assert (
        "radiograph hand.dcm: unlike the model's training domain: BodyPartExamined HAND (expected CHEST, THORAX "
        "or LUNG); ViewPosition not stated (expected PA)"
    ) in caplog.text


def test_angle_views_accept_any_stated_view() -> None:
    geometry = Geometry(sdd_mm=1000.0, sad_mm=800.0, detector_shape=(16, 16), pixel_mm=2.5, view=90.0)
    image = Radiograph(torch.from_numpy(ramp().astype(np.float32)), (2.5, 2.5), "LL", {"modality": "DX"})
    view = [c for c in check_radiograph(image, geometry) if c.measure == "view"]
    assert view == [DomainCheck("view", "90 deg (no named view)", "LL", "ok")]


def test_view_mismatch_is_an_error(tmp_path) -> None:
    path = write_cr(tmp_path / "x.dcm", ramp(40, 30), ImagerPixelSpacing=[0.5, 0.5], ViewPosition="LL")
    g = Geometry(sdd_mm=1000.0, sad_mm=700.0, detector_shape=(8, 8), pixel_mm=2.0, view="PA")
    checks = check_radiograph(load_radiograph(path), g)
    with pytest.raises(InputDataError, match=r"ViewPosition LL \(expected PA\)"):
        enforce_checks(checks, path)
