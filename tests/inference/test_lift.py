"""X-ray -> CT through the Translator: radiographs in, a CT in HU on the documented grid out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from medxlate.checkpoint import save_checkpoint
from medxlate.errors import CheckpointError, ConfigError, InputDataError
from medxlate.inference import SliceStrategy, Translator, evaluate_lift_case, strategy_to_dict
from medxlate.inference.lift import views_from_radiographs
from medxlate.metrics.volume import volume_metrics
from medxlate.models.x2ct import X2CTGenerator
from medxlate.xray.cases import make_case, reprojection_agreement
from medxlate.xray.radiograph_io import write_case_radiographs, write_radiograph_dicom
from tests.inference.lift_helpers import (
    SIZE,
    WINDOW,
    lift_payload,
    lift_preprocessing,
    lift_strategy,
    phantom_ct,
    write_lift_checkpoint,
)
from tests.inference.test_translator_3d import write_3d_checkpoint

# the documented output grid, written out: 16^3 voxels of 2 mm, RAS, centred on the world origin
GRID = np.array([[2.0, 0, 0, -15.0], [0, 2.0, 0, -15.0], [0, 0, 2.0, -15.0], [0, 0, 0, 1]])


def _reference(payload: dict, views: torch.Tensor) -> torch.Tensor:
    """What the model should give, computed without the Translator: generator, then the window."""
    generator = X2CTGenerator(3, 1, 1, **payload["generator_spec"]["params"])
    generator.load_state_dict(payload["generator"])
    with torch.no_grad():
        unit = generator.eval()(views[None])[0]
    return (unit + 1) / 2 * (WINDOW[1] - WINDOW[0]) + WINDOW[0]


def _case(views: tuple[str, ...] = ("PA",)):
    strategy = lift_strategy(views)
    return make_case(phantom_ct(), strategy.geometries(), strategy.size, strategy.fov_mm, 0.5)


def test_translate_views_gives_hu_on_the_documented_grid(tmp_path: Path) -> None:
    payload = lift_payload(("PA", "LL"))
    save_checkpoint(payload, tmp_path / "m.pt")
    translator = Translator.from_checkpoint(tmp_path / "m.pt", device="cpu")
    case = _case(("PA", "LL"))
    result = translator.translate_views(case.views)
    assert result.shape == (1, SIZE, SIZE, SIZE)
    np.testing.assert_array_equal(np.asarray(result.affine, dtype=np.float64), GRID)
    torch.testing.assert_close(result.as_tensor(), _reference(payload, case.views), rtol=1e-5, atol=1e-3)
    assert WINDOW[0] <= float(result.min()) < float(result.max()) <= WINDOW[1]


def test_radiograph_files_reach_the_same_views_as_the_drrs(tmp_path: Path) -> None:
    case = _case(("PA", "LL"))
    strategy = lift_strategy(("PA", "LL"))
    files = write_case_radiographs(case.ct_hu, case.ct_hu.affine, strategy.geometries(), tmp_path, "c")
    views, records = views_from_radiographs(files, strategy)
    torch.testing.assert_close(views, case.views, rtol=0, atol=2e-4)
    assert float((views - (-case.views)).abs().mean()) > 0.5  # a reader that skipped MONOCHROME1 would fail
    assert [r["view"] for r in records] == ["PA", "LL"]
    assert records[0]["detector_domain"]["read"]["inverted"] is True
    assert records[0]["detector_domain"]["pixel_mm_used"] == [2.5, 2.5]
    assert records[0]["detector_domain"]["scale_source_pixels_per_detector_pixel"] == [1.0, 1.0]


def test_translate_radiographs_writes_a_marked_nifti_with_provenance(tmp_path: Path) -> None:
    payload = lift_payload(("PA",))
    save_checkpoint(payload, tmp_path / "m.pt")
    translator = Translator.from_checkpoint(tmp_path / "m.pt", device="cpu")
    case = _case()
    (file,) = write_case_radiographs(case.ct_hu, case.ct_hu.affine, lift_strategy().geometries(), tmp_path, "c")
    out = translator.translate_radiographs([file], tmp_path / "out" / "ct.nii.gz")
    written = nib.load(str(out))
    np.testing.assert_allclose(written.affine, GRID, atol=1e-6)
    assert int(written.header["sform_code"]) == 1 and int(written.header["qform_code"]) == 1
    views, _ = views_from_radiographs([file], lift_strategy())
    np.testing.assert_allclose(written.get_fdata(), _reference(payload, views)[0].numpy(), rtol=1e-5, atol=1e-2)
    assert (
        written.header["descrip"].tobytes().rstrip(b"\0")
        == b"SYNTHETIC CT from radiographs by medxlate; not for diagnosis"
    )
    sidecar = json.loads((tmp_path / "out" / "ct.json").read_text())
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    assert sidecar["synthetic"] is True and sidecar["source_sha256"] == digest
    (radiograph,) = sidecar["source"]["radiographs"]
    assert radiograph["path"] == str(file.resolve()) and radiograph["sha256"] == digest and radiograph["view"] == "PA"
    assert radiograph["detector_domain"]["read"]["spacing_source"] == "ImagerPixelSpacing"
    assert sidecar["source"]["output_grid"]["affine_ras"] == GRID.tolist()
    assert sidecar["source"]["output_grid"]["orientation"] == "RAS"
    assert sidecar["preprocessing"]["inference"]["kind"] == "lift"


def test_monochrome1_and_its_monochrome2_twin_give_the_same_volume(tmp_path: Path) -> None:
    translator = Translator.from_checkpoint(write_lift_checkpoint(tmp_path / "m.pt"), device="cpu")
    geometry = lift_strategy().geometries()[0]
    lines = torch.rand(SIZE, SIZE, generator=torch.Generator().manual_seed(3)) * 4
    one = write_radiograph_dicom(lines, tmp_path / "m1.dcm", geometry.pixel_mm, "PA", monochrome1=True, bits_stored=12)
    two = write_radiograph_dicom(lines, tmp_path / "m2.dcm", geometry.pixel_mm, "PA", monochrome1=False, bits_stored=12)
    first = translator.translate_radiographs([one], tmp_path / "a.nii.gz")
    second = translator.translate_radiographs([two], tmp_path / "b.nii.gz")
    np.testing.assert_array_equal(nib.load(str(first)).get_fdata(), nib.load(str(second)).get_fdata())


def test_wrong_view_count_and_order_name_the_files(tmp_path: Path) -> None:
    translator = Translator.from_checkpoint(write_lift_checkpoint(tmp_path / "m.pt", ("PA", "LL")), device="cpu")
    case = _case(("PA", "LL"))
    pa, ll = write_case_radiographs(
        case.ct_hu, case.ct_hu.affine, lift_strategy(("PA", "LL")).geometries(), tmp_path, "c"
    )
    with pytest.raises(InputDataError, match=r"model expects 2 views \(PA, LL\), got 1 file \(.*c_PA.dcm\)"):
        translator.translate_radiographs([pa], tmp_path / "o.nii.gz")
    with pytest.raises(InputDataError, match=r"c_LL.dcm: not what the model was trained on: ViewPosition LL"):
        translator.translate_radiographs([ll, pa], tmp_path / "o.nii.gz")
    assert not (tmp_path / "o.nii.gz").exists() and not (tmp_path / "o.json").exists()
    assert translator.translate_radiographs([pa, ll], tmp_path / "o.nii.gz").is_file()


def test_image_without_spacing_needs_pixel_mm(tmp_path: Path) -> None:
    translator = Translator.from_checkpoint(write_lift_checkpoint(tmp_path / "m.pt"), device="cpu")
    png = tmp_path / "pa.png"
    ramp = np.add.outer(np.arange(40), np.arange(40)).astype(np.uint8) * 3
    Image.fromarray(ramp).save(png)
    with pytest.raises(InputDataError, match=r"pa.png: radiograph has no usable pixel spacing .*pass pixel_mm"):
        translator.translate_radiographs([png], tmp_path / "o.nii.gz")
    with pytest.raises(ConfigError, match=r"pixel_mm \(--pixel-mm\) -1: expected a detector pixel spacing from 0.01"):
        translator.translate_radiographs([png], tmp_path / "o.nii.gz", pixel_mm=-1)
    out = translator.translate_radiographs([png], tmp_path / "o.nii.gz", pixel_mm=1.0)
    record = json.loads((tmp_path / "o.json").read_text())["source"]["radiographs"][0]["detector_domain"]
    assert record["pixel_mm_used"] == [1.0, 1.0] and record["scale_source_pixels_per_detector_pixel"] == [2.5, 2.5]
    assert record["pad_source_pixels_per_side"] == [0.0, 0.0] and record["crop_source_pixels_per_side"] == [0.0, 0.0]
    assert out.is_file()


def test_non_finite_radiograph_is_refused(tmp_path: Path) -> None:
    translator = Translator.from_checkpoint(write_lift_checkpoint(tmp_path / "m.pt"), device="cpu")
    pixels = np.ones((16, 16), dtype=np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(InputDataError, match=r"nan.tif: 1 of 256 pixels are NaN/inf"):
        translator.translate_radiographs([tmp_path / "nan.tif"], tmp_path / "o.nii.gz", pixel_mm=2.5)
    with pytest.raises(InputDataError, match=r"views: 1 of 256 pixels are NaN/inf"):
        translator.translate_views(torch.from_numpy(pixels)[None])
    assert not (tmp_path / "o.nii.gz").exists()


def test_volume_and_radiograph_models_refuse_each_others_inputs(tmp_path: Path) -> None:
    lift_model = Translator.from_checkpoint(write_lift_checkpoint(tmp_path / "m.pt"), device="cpu")
    with pytest.raises(InputDataError, match=r"reconstructs a CT from radiographs \(PA\), not from a volume"):
        lift_model(phantom_ct())
    volume_model = Translator.from_checkpoint(write_3d_checkpoint(tmp_path / "v.pt"), device="cpu")
    with pytest.raises(InputDataError, match="translate_views: this model translates volumes"):
        volume_model.translate_views(torch.zeros(1, SIZE, SIZE))
    with pytest.raises(InputDataError, match="translate_radiographs: this model translates volumes"):
        volume_model.translate_radiographs([tmp_path / "x.dcm"], tmp_path / "o.nii.gz")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["generator_spec"]["params"].update(views=["LL"]), r"generator views \['LL'\] differ"),
        (lambda p: p["inference"].update(views=["PA", "LL"]), r"generator views \['PA'\] differ .* \['PA', 'LL'\]"),
        (lambda p: p["inference"].update(size=32), "generator image_size 16 differs from .* size 32"),
        (lambda p: p.update(inference=strategy_to_dict(SliceStrategy())), "'slices' needs a 2D generator"),
        (lambda p: p["preprocessing"]["task"].update(name="ct2mr", geometry="same_grid"), "geometry 'projection'"),
    ],
)
def test_lift_checkpoints_that_do_not_fit_are_refused(tmp_path: Path, change, message: str) -> None:
    payload = lift_payload(("PA",))
    change(payload)
    save_checkpoint(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=message):
        Translator.from_checkpoint(tmp_path / "bad.pt", device="cpu")


def test_projection_task_needs_the_lift_strategy(tmp_path: Path) -> None:
    payload = torch.load(write_3d_checkpoint(tmp_path / "v.pt"), weights_only=True)
    payload["preprocessing"] = lift_preprocessing().to_dict()
    save_checkpoint(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="task 'xray2ct' maps views to a volume; expected inference 'lift'"):
        Translator.from_checkpoint(tmp_path / "bad.pt", device="cpu")


def test_evaluate_lift_case_scores_in_hu_against_the_ct(tmp_path: Path) -> None:
    payload = lift_payload(("PA", "LL"))
    save_checkpoint(payload, tmp_path / "m.pt")
    translator = Translator.from_checkpoint(tmp_path / "m.pt", device="cpu")
    case = _case(("PA", "LL"))
    strategy = lift_strategy(("PA", "LL"))
    predicted, values = evaluate_lift_case(
        translator.generator, case, strategy, lift_preprocessing(), torch.device("cpu"), label="c"
    )
    expected = _reference(payload, case.views)
    torch.testing.assert_close(predicted.as_tensor(), expected, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(predicted.affine.double(), case.ct_hu.affine.double())  # the case's grid
    direct = volume_metrics(expected[0], case.ct_hu[0].as_tensor(), case.mask[0], WINDOW[1] - WINDOW[0])
    direct |= reprojection_agreement(expected, case.views, case.ct_hu.affine, strategy.geometries())
    assert values.keys() == direct.keys() and values["data_range"] == 3072.0
    for name, value in direct.items():
        assert values[name] == pytest.approx(value, rel=1e-4, abs=1e-4), name
    # the real CT scores perfectly against itself: the scorer compares the right volumes
    perfect = volume_metrics(case.ct_hu[0].as_tensor(), case.ct_hu[0].as_tensor(), case.mask[0], 3072.0)
    assert perfect["mae"] == 0.0 and values["mae"] > 100.0
