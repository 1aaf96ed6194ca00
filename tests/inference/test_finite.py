"""The finiteness rule: non-finite inputs are refused, non-finite outputs never returned or written,
and evaluation/validation never report NaN/inf as a value."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medxlate.checkpoint import save_checkpoint
from medxlate.data import read_dataset
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import CheckpointError, InputDataError, NonFiniteError
from medxlate.evaluation import evaluate
from medxlate.inference import SliceStrategy, Translator
from medxlate.io import load_volume
from medxlate.metrics.summary import finite_case_means
from medxlate.models import build_generator
from medxlate.training.validation import validate
from medxlate.transforms import Preprocessing
from tests.conftest import phantom, tiny_affine, write_nifti

SPEC = {"name": "unet", "spatial_dims": 2, "in_channels": 1, "out_channels": 1, "params": {"num_downs": 3, "ngf": 4}}
PREP = Preprocessing(source_window=(-1024.0, 3071.0), target_percentiles=(0.5, 99.5), target_range=(0.0, 1400.0))


def _generator(poison: float | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    generator = build_generator(SPEC["name"], 2, 1, 1, **SPEC["params"])
    if poison is not None:
        with torch.no_grad():
            next(generator.parameters()).view(-1)[0] = poison
    return generator


def _translator(poison: float | None = None) -> Translator:
    prep = Preprocessing(**{**PREP.__dict__, "divisible": 8})
    return Translator(_generator(poison), prep, device="cpu")


def _checkpoint(path: Path, poison: float | None = None) -> Path:
    payload = {
        "generator": _generator(poison).state_dict(),
        "generator_spec": SPEC,
        "preprocessing": Preprocessing(**{**PREP.__dict__, "divisible": 8}).to_dict(),
        "config": {"name": "tiny"},
        "target_modality": "MR",
    }
    return save_checkpoint(payload, path)


@pytest.fixture
def ct_file(tmp_path: Path) -> Path:
    ct, _, _ = phantom(0)
    path = tmp_path / "ct.nii.gz"
    write_nifti(ct.astype(np.float32), path, tiny_affine())
    return path


def _with_values(path: Path, where: tuple[slice, ...], value: float, out: Path) -> Path:
    ct, _, _ = phantom(0)
    data = ct.astype(np.float32)
    data[where] = value
    write_nifti(data, out, tiny_affine())
    return out


@pytest.mark.parametrize(
    ("region", "value", "count", "message"),
    [
        ((slice(None),) * 3, np.nan, 20 * 24 * 12, r"5760 of 5760 voxels are not finite \(5760 NaN, 0 inf\)"),
        ((slice(5, 8), slice(6, 9), slice(2, 4)), np.inf, 18, r"18 of 5760 voxels are not finite \(0 NaN, 18 inf\)"),
        ((slice(5, 8), slice(6, 9), slice(2, 4)), np.nan, 18, r"18 of 5760 voxels are not finite \(18 NaN, 0 inf\)"),
    ],
    ids=["all-nan", "inf-patch", "nan-patch"],
)
def test_non_finite_inputs_are_refused_naming_the_file(
    tmp_path: Path, region: tuple[slice, ...], value: float, count: int, message: str
) -> None:
    source = _with_values(tmp_path / "ct.nii.gz", region, value, tmp_path / "bad.nii.gz")
    assert int((~torch.isfinite(load_volume(source))).sum()) == count
    translator = _translator()
    out = tmp_path / "out" / "syn.nii.gz"
    with pytest.raises(InputDataError, match=re_path(source) + ": " + message):
        translator.translate_file(source, out)
    assert not out.parent.exists() or not any(out.parent.iterdir())  # nothing written
    with pytest.raises(InputDataError, match="input volume: " + message):
        translator(load_volume(source))


def re_path(path: Path) -> str:
    import re

    return re.escape(str(path))


def test_non_finite_error_is_public_and_a_medxlate_error() -> None:
    import medxlate

    assert medxlate.NonFiniteError is NonFiniteError and issubclass(NonFiniteError, medxlate.MedxlateError)


def test_checkpoint_with_nan_weights_is_refused(tmp_path: Path) -> None:
    good = Translator.from_checkpoint(_checkpoint(tmp_path / "good.pt"), device="cpu")
    assert isinstance(good, Translator)
    bad = _checkpoint(tmp_path / "bad.pt", poison=float("nan"))
    with pytest.raises(CheckpointError, match=r"bad\.pt: the generator holds 1 non-finite weights in 1 tensors"):
        Translator.from_checkpoint(bad, device="cpu")


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_non_finite_output_is_never_returned_or_written(ct_file: Path, tmp_path: Path, poison: float) -> None:
    translator = _translator(poison)  # built directly, bypassing the checkpoint check
    out = tmp_path / "out" / "syn.nii.gz"
    with pytest.raises(NonFiniteError, match=r"translation: the generator produced \d+ non-finite voxels"):
        translator.translate_file(ct_file, out)
    assert not out.exists() and not out.with_suffix("").with_suffix(".json").exists()
    with pytest.raises(NonFiniteError):
        translator(load_volume(ct_file))
    assert torch.isfinite(_translator()(load_volume(ct_file))).all()  # the same input, healthy weights


def test_finite_case_means_excludes_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    per_case = {
        "a": {"ssim": 0.5, "psnr": 20.0, "mae_body": float("nan")},
        "b": {"ssim": 0.7, "psnr": float("inf"), "mae_body": float("nan")},
        "c": {"ssim": 0.9, "psnr": 30.0, "mae_body": float("nan")},
    }
    with caplog.at_level(logging.WARNING):
        reduced = finite_case_means(per_case, "test")
    assert reduced.means == pytest.approx({"ssim": 0.7, "psnr": 25.0})
    assert reduced.excluded == {"psnr": ["b"], "mae_body": ["a", "b", "c"]}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "test: psnr is undefined (NaN/inf) for 1 of 3 cases (b=inf" in lines[0]
    assert "mean over the other 2" in lines[0]
    assert "mae_body is undefined (NaN/inf) for 3 of 3 cases" in lines[1] and "not reported" in lines[1]


def test_evaluation_never_reports_nan(paired_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    val = read_dataset(tmp_path / "dataset").split("val")[0]
    empty = load_volume(val.mask)
    write_nifti(np.zeros(empty.shape[1:], np.uint8), val.mask, empty.affine.numpy())  # no body in this case
    with caplog.at_level(logging.WARNING):
        result = evaluate(_checkpoint(tmp_path / "g.pt"), tmp_path / "dataset", tmp_path / "eval", device="cpu")
    assert math.isnan(result.per_case[val.id]["mae_body"])  # per case: undefined, stated as such
    assert "mae_body" not in result.summary and "ssim_body" not in result.summary
    assert all(math.isfinite(v) for v in result.summary.values()) and "mae" in result.summary
    content = json.loads(result.summary_path.read_text(), parse_constant=_refuse_constant)
    assert content["excluded"] == {name: [val.id] for name in ("ssim_body", "psnr_body", "mae_body")}
    rows = result.csv_path.read_text().splitlines()
    header, row = rows[0].split(","), rows[1].split(",")
    assert row[header.index("mae_body")] == "" and "nan" not in rows[1].lower()
    assert any("mae_body is undefined" in r.getMessage() for r in caplog.records)


def _refuse_constant(name: str) -> float:
    raise AssertionError(f"summary JSON holds {name}")


def test_validation_refuses_a_diverged_generator() -> None:
    source = MetaTensor(torch.zeros(1, 16, 16, 4))
    from medxlate.data.volumes import PairedVolume

    volume = PairedVolume("c0", source, source.clone(), torch.ones(1, 16, 16, 4, dtype=torch.bool), (0.0, 1.0))
    prep = Preprocessing(**{**PREP.__dict__, "divisible": 8})
    with pytest.raises(NonFiniteError, match=r"validation case 'c0': the generator produced"):
        validate(_generator(float("nan")), [volume], prep, SliceStrategy(), torch.device("cpu"))
