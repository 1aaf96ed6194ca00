"""`evaluate` and the pipeline's translate stage for an X-ray -> CT (lift) checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from medxlate.data import read_dataset
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import InputDataError
from medxlate.evaluation import evaluate
from medxlate.inference import Translator, evaluate_lift_case
from medxlate.io import load_volume
from medxlate.pipeline import _translate
from medxlate.xray.cases import make_case
from tests.inference.lift_helpers import write_lift_checkpoint
from tests.metrics.test_anatomy import reference_hd95


@pytest.fixture
def dataset(paired_folder: Path, tmp_path: Path) -> Path:
    """The CT/MR phantom dataset (two train cases, one val case) with body masks."""
    prepare_dataset(paired_folder, tmp_path / "dataset")
    return tmp_path / "dataset"


def test_evaluate_scores_the_reconstruction_against_the_ct(dataset: Path, tmp_path: Path) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt", ("PA", "LL"))
    result = evaluate(checkpoint, dataset, tmp_path / "eval", split="train", device="cpu", report=True)
    assert list(result.per_case) == ["case_000", "case_001"]
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    strategy = translator.strategy
    for case in read_dataset(dataset).split("train"):  # the CT is the dataset's source role here
        made = make_case(load_volume(case.source), strategy.geometries(), 16, 32.0, 0.5, load_volume(case.mask))
        assert int(made.mask.sum()) < made.mask.numel()  # the body mask reached the grid
        predicted, expected = evaluate_lift_case(
            translator.generator, made, strategy, translator.preprocessing, torch.device("cpu")
        )
        scored = result.per_case[case.id]
        assert {k: scored[k] for k in expected} == pytest.approx(expected, rel=1e-5, abs=1e-5)
        # the synthetic CT's bone and air inside the body, on the model grid (2 mm voxels): NumPy Dice, SciPy HD95
        synthetic, real, body = (np.asarray(v).squeeze() for v in (predicted, made.ct_hu, made.mask))
        for name, select in (("bone", lambda ct: ct >= 250), ("air", lambda ct: ct <= -400)):
            pred, ref = body & select(synthetic), body & select(real)
            assert ref.any()
            dice = 2 * (pred & ref).sum() / (pred.sum() + ref.sum())
            assert scored[f"dice_{name}"] == pytest.approx(dice, rel=1e-5, abs=1e-6)
            hd95 = reference_hd95(pred, ref, (2.0, 2.0, 2.0)) if pred.any() else np.nan
            assert scored[f"hd95_{name}"] == pytest.approx(hd95, rel=1e-5, nan_ok=True)
    names = ["ssim", "psnr", "mae", "ssim_body", "psnr_body", "mae_body", "data_range"]
    anatomy = ["dice_bone", "hd95_bone", "dice_air", "hd95_air"]
    assert list(result.per_case["case_000"]) == [*names, "reprojection_mae", "reprojection_ssim", *anatomy]
    rows = list(csv.DictReader(result.csv_path.open()))
    assert [r["case"] for r in rows] == ["case_000", "case_001"]
    assert float(rows[1]["mae_body"]) == pytest.approx(result.per_case["case_001"]["mae_body"], rel=1e-5)
    summary = json.loads(result.summary_path.read_text())
    assert summary["mean"]["reprojection_mae"] == pytest.approx(
        np.mean([v["reprojection_mae"] for v in result.per_case.values()]), rel=1e-9
    )
    boxplots, montage = result.pictures
    with Image.open(boxplots) as box, Image.open(montage) as picture:
        assert box.format == picture.format == "PNG"
        assert picture.size[1] > picture.size[0]  # 2 cases x 3 planes, 3 columns (no source volume)


def test_min_coverage_comes_from_the_checkpoint_config(dataset: Path, tmp_path: Path) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt", config={"name": "x", "xray": {"min_coverage": 0.99}})
    with pytest.raises(InputDataError, match=r"source.nii.gz: CT spans .* at least 99% .*xray.min_coverage 0.99"):
        evaluate(checkpoint, dataset, tmp_path / "eval", device="cpu")


def test_evaluate_refuses_a_dataset_without_ct(dataset: Path, tmp_path: Path) -> None:
    index = json.loads((dataset / "dataset.json").read_text())
    index["source_modality"] = "MR"
    (dataset / "dataset.json").write_text(json.dumps(index))
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt")
    with pytest.raises(InputDataError, match="X-ray -> CT trains on CT volumes; this dataset holds MR and MR"):
        evaluate(checkpoint, dataset, tmp_path / "eval", device="cpu")


def test_pipeline_translate_stage_goes_through_radiograph_files(dataset: Path, tmp_path: Path) -> None:
    checkpoint = write_lift_checkpoint(tmp_path / "model.pt", ("PA", "LL"))
    out = tmp_path / "translated"
    written = _translate(checkpoint, dataset, out, "val")
    assert written == [out / "case_002_synthetic_ct.nii.gz"]
    files = sorted((out / "radiographs").iterdir())
    assert [f.name for f in files] == ["case_002_LL.dcm", "case_002_PA.dcm"]
    header = pydicom.dcmread(files[1])
    assert (header.Modality, header.PhotometricInterpretation, header.ViewPosition) == ("CR", "MONOCHROME1", "PA")
    # the files carry the case's DRRs: the reconstruction equals the one from the rendered views
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    case = read_dataset(dataset).split("val")[0]
    strategy = translator.strategy
    made = make_case(load_volume(case.source), strategy.geometries(), 16, 32.0, 0.5, load_volume(case.mask))
    expected = translator.translate_views(made.views)
    image = nib.load(str(written[0]))
    np.testing.assert_allclose(image.get_fdata(), expected[0].numpy(), rtol=0, atol=0.5)
    np.testing.assert_allclose(image.affine, np.asarray(strategy.grid_affine()), atol=1e-6)
    sources = json.loads((out / "case_002_synthetic_ct.json").read_text())["source"]["radiographs"]
    assert [Path(r["path"]).name for r in sources] == ["case_002_PA.dcm", "case_002_LL.dcm"]


def test_a_trained_checkpoint_evaluates_as_it_validated_and_translates(dataset: Path, tmp_path: Path) -> None:
    from medxlate.config import validate_config
    from medxlate.training import fit
    from tests.training.test_lift import _xray_config

    trained = fit(validate_config(_xray_config(dataset, tmp_path / "run")))
    result = evaluate(trained.checkpoint, dataset, tmp_path / "eval", split="val", device="cpu")
    assert result.per_case.keys() == trained.per_case.keys() == {"case_002"}
    validated = trained.per_case["case_002"]  # evaluate adds the bone/air columns, validation does not
    assert {k: result.per_case["case_002"][k] for k in validated} == pytest.approx(validated, rel=1e-5, abs=1e-5)
    (written,) = _translate(trained.checkpoint, dataset, tmp_path / "translated", "val")
    spacing = 40.0 / 16  # the tiny config's field and grid
    expected = np.diag([spacing, spacing, spacing, 1.0])
    expected[:3, 3] = -spacing * 15 / 2
    np.testing.assert_allclose(nib.load(str(written)).affine, expected, atol=1e-6)
