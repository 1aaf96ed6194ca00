"""`medxlate translate CHECKPOINT RADIOGRAPH... OUT.nii.gz` end to end, with a synthetic CR DICOM."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from medxlate.inference import Translator
from medxlate.xray import project
from medxlate.xray.attenuation import hu_to_mu
from medxlate.xray.cases import make_case
from medxlate.xray.radiograph_io import write_radiograph_dicom
from tests.dicom_factory import write_ct_series
from tests.inference.lift_helpers import SIZE, WINDOW, lift_strategy, phantom_ct, write_lift_checkpoint
from tests.inference.test_translator_3d import write_3d_checkpoint
from tests.test_cli import run_cli
from tests.test_cli_errors import assert_one_error_line
from tests.xray.radiograph_factory import png_header, write_cr

GRID = np.array([[2.0, 0, 0, -15.0], [0, 2.0, 0, -15.0], [0, 0, 2.0, -15.0], [0, 0, 0, 1]])


def _drr_lines(views: tuple[str, ...] = ("PA",)) -> torch.Tensor:
    """Line integrals ``(V, S, S)`` of the phantom CT on the model grid, one per view."""
    strategy = lift_strategy(views)
    case = make_case(phantom_ct(), strategy.geometries(), strategy.size, strategy.fov_mm, 0.5)
    return project(hu_to_mu(case.ct_hu.as_tensor())[None], case.ct_hu.affine, strategy.geometries())[0]


def _cr_dicom(path: Path, view: str = "PA", lines: torch.Tensor | None = None) -> Path:
    """CR Image Storage, MONOCHROME1, 16 bits allocated / 12 stored, spacing only in ImagerPixelSpacing."""
    geometry = lift_strategy((view,)).geometries()[0]
    pixels = _drr_lines((view,))[0] if lines is None else lines
    return write_radiograph_dicom(pixels, path, geometry.pixel_mm, view, monochrome1=True, bits_stored=12)


def test_cr_dicom_translates_to_a_ct_nifti(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt")
    radiograph = _cr_dicom(tmp_path / "pa.dcm")
    ds = pydicom.dcmread(radiograph)
    assert (ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored) == ("MONOCHROME1", 16, 12)
    assert "PixelSpacing" not in ds and "ImagerPixelSpacing" in ds
    out = tmp_path / "ct.nii.gz"
    code, stdout, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(radiograph), str(out))
    assert code == 0, err
    assert stdout == f"synthetic CT volume: {out}\n"
    written = nib.load(str(out))
    assert written.shape == (SIZE, SIZE, SIZE)
    np.testing.assert_allclose(written.affine, GRID, atol=1e-6)
    assert nib.aff2axcodes(written.affine) == ("R", "A", "S")
    data = written.get_fdata()
    assert WINDOW[0] <= data.min() < data.max() <= WINDOW[1]
    assert written.header["descrip"].tobytes().startswith(b"SYNTHETIC CT from radiographs")
    sidecar = json.loads((tmp_path / "ct.json").read_text())
    assert sidecar["source"]["radiographs"][0]["sha256"] == hashlib.sha256(radiograph.read_bytes()).hexdigest()
    # the same reconstruction as from the API, from the same file
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    again = translator.translate_radiographs([radiograph], tmp_path / "api.nii.gz")
    np.testing.assert_allclose(data, nib.load(str(again)).get_fdata(), rtol=0, atol=1e-4)


def test_biplanar_model_takes_two_files_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt", ("PA", "LL"))
    lines = _drr_lines(("PA", "LL"))
    pa, lat = _cr_dicom(tmp_path / "PA.dcm", "PA", lines[0]), _cr_dicom(tmp_path / "LAT.dcm", "LL", lines[1])
    out = tmp_path / "ct.nii.gz"
    code, stdout, err = run_cli(
        monkeypatch, capsys, "translate", str(checkpoint), str(pa), str(lat), str(out), "--json"
    )
    assert code == 0, err
    assert json.loads(stdout) == {
        "output": str(out),
        "provenance": str(tmp_path / "ct.json"),
        "input": [str(pa), str(lat)],
    }
    sidecar = json.loads((tmp_path / "ct.json").read_text())
    assert [r["view"] for r in sidecar["source"]["radiographs"]] == ["PA", "LL"]
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(pa), str(tmp_path / "one.nii.gz"))
    assert code == 2
    assert_one_error_line(err, "model expects 2 views (PA, LL), got 1 file")
    code, _, err = run_cli(
        monkeypatch, capsys, "translate", str(checkpoint), str(lat), str(pa), str(tmp_path / "x.nii.gz")
    )
    assert code == 2
    assert_one_error_line(err, f"{lat}: not what the model was trained on: ViewPosition LL (expected PA)")
    assert not (tmp_path / "one.nii.gz").exists() and not (tmp_path / "x.nii.gz").exists()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda p: write_cr(p, np.zeros((8, 8, 3), np.uint8), bits=8, photometric="RGB"),
            "PhotometricInterpretation RGB",
        ),
        (lambda p: write_cr(p, np.zeros((16, 8), np.uint16), Rows=8, NumberOfFrames=2), "NumberOfFrames = 2"),
        (lambda p: write_cr(p, np.eye(8, dtype=np.uint16), ViewPosition="PA"), "no usable pixel spacing"),
    ],
    ids=["rgb", "multi-frame", "no-spacing"],
)
def test_unusable_radiographs_are_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], make, expected: str
) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt")
    bad = make(tmp_path / "bad.dcm")
    code, stdout, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(bad), str(tmp_path / "o.nii.gz"))
    assert code == 2 and stdout == ""
    assert_one_error_line(err, expected)
    assert str(bad) in err
    assert not (tmp_path / "o.nii.gz").exists()


def test_pixel_mm_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt")
    bare = write_cr(tmp_path / "bare.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8) * 50, ViewPosition="PA")
    out = tmp_path / "o.nii.gz"
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(bare), str(out), "--pixel-mm", "5")
    assert code == 0, err
    record = json.loads((tmp_path / "o.json").read_text())["source"]
    assert record["pixel_mm_given"] == 5.0
    assert record["radiographs"][0]["detector_domain"]["pixel_mm_used"] == [5.0, 5.0]


def test_volume_models_keep_one_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = write_3d_checkpoint(tmp_path / "v.pt")
    args = ("translate", str(checkpoint), "a.nii.gz", "b.nii.gz", str(tmp_path / "o.nii.gz"))
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    assert_one_error_line(err, "this model translates one volume (or one batch folder) per call, got 2 inputs")
    code, _, err = run_cli(monkeypatch, capsys, *args[:3], args[4], "--pixel-mm", "0.5")
    assert code == 2
    assert_one_error_line(err, "--pixel-mm applies to X-ray -> CT models")


def _localizer(folder: Path) -> Path:
    """A CT localizer: CT Image Storage, ImageType ORIGINAL\\PRIMARY\\LOCALIZER, PixelSpacing 1 mm."""
    values = np.arange(32.0)[:, None, None] * np.ones((32, 32, 1)) * 20
    return write_ct_series(folder, values, shuffle=False, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))[0]


def test_wrong_kind_radiographs_are_refused_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt")
    localizer, out = _localizer(tmp_path / "scout"), tmp_path / "o.nii.gz"
    lateral = write_cr(tmp_path / "lat.dcm", np.eye(32, dtype=np.uint16) * 900, ViewPosition="LATERAL")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "zero.png")
    for bad, found in [
        (
            localizer,
            "Modality CT (expected CR, DX, DR or RG); ImageType ORIGINAL\\PRIMARY\\LOCALIZER (expected no LOCALIZER/"
            "SCOUT/TOPOGRAM)",
        ),
        (lateral, "ViewPosition LATERAL (expected PA)"),
        (tmp_path / "zero.png", "pixels all 0 (a constant image) (expected values that vary)"),
    ]:
        code, stdout, err = run_cli(
            monkeypatch, capsys, "translate", str(checkpoint), str(bad), str(out), "--pixel-mm", "1"
        )
        assert code == 2 and stdout == "", err
        assert_one_error_line(err, f"radiograph {bad}: not what the model was trained on: {found}; --force")
        assert not out.exists()
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(localizer), str(out), "--force")
    assert code == 0, err
    source = json.loads((tmp_path / "o.json").read_text())["source"]
    assert source["force_given"] is True
    verdicts = {c["measure"]: (c["found"], c["verdict"]) for c in source["radiographs"][0]["domain_checks"]}
    assert verdicts["modality"] == ("CT", "refuse")
    assert verdicts["image_type"] == ("ORIGINAL\\PRIMARY\\LOCALIZER", "refuse")


def test_an_extremity_without_view_position_is_translated_with_a_warning(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt")
    hand = write_cr(
        tmp_path / "hand.dcm", np.eye(32, dtype=np.uint16) * 900, ImagerPixelSpacing=[1.0, 1.0], BodyPartExamined="HAND"
    )
    with caplog.at_level(logging.WARNING):
        code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(hand), str(tmp_path / "o.nii.gz"))
    assert code == 0, err
    assert (
        "radiograph hand.dcm: unlike the model's training domain: BodyPartExamined HAND (expected CHEST, THORAX or "
        "LUNG); ViewPosition not stated (expected PA)"
    ) in caplog.text
    checks = json.loads((tmp_path / "o.json").read_text())["source"]["radiographs"][0]["domain_checks"]
    assert {c["measure"]: c["verdict"] for c in checks if c["verdict"] != "ok"} == {"body_part": "warn", "view": "warn"}


@pytest.mark.parametrize(
    ("make", "option", "expected"),
    [
        (lambda d: png_header(d / "bomb.png", 13500, 13500), "0.2", "bomb.png: too many pixels (Image size"),
        (lambda d: _cr_dicom(d / "pa.dcm"), "1e-30", "pixel_mm (--pixel-mm) 1e-30: expected a detector pixel spacing"),
        (lambda d: _cr_dicom(d / "pa.dcm"), "1e30", "pixel_mm (--pixel-mm) 1e+30: expected a detector pixel spacing"),
        (
            lambda d: write_cr(
                d / "m.dcm",
                np.eye(16, dtype=np.uint16),
                PixelSpacing=[1, 1],
                EstimatedRadiographicMagnificationFactor=b"1,2",
            ),
            None,
            "m.dcm: EstimatedRadiographicMagnificationFactor '1,2'; expected one decimal number",
        ),
        (
            lambda d: write_cr(d / "s.dcm", np.eye(16, dtype=np.uint16), ImagerPixelSpacing=[1e-30, 1e-30]),
            None,
            "s.dcm: ImagerPixelSpacing 1e-30, 1e-30 mm; expected a detector pixel spacing from 0.01 to 20 mm",
        ),
    ],
    ids=["decompression-bomb", "pixel-mm-tiny", "pixel-mm-huge", "malformed-magnification", "file-spacing-tiny"],
)
def test_implausible_sizes_and_spacings_are_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], make, option, expected
) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt")
    bad, out = make(tmp_path), tmp_path / "o.nii.gz"
    args = ("translate", str(checkpoint), str(bad), str(out), *(("--pixel-mm", option) if option else ()))
    code, stdout, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and stdout == "", err
    assert_one_error_line(err, expected)
    assert not out.exists()
