"""The inference benchmark runs end to end at a tiny size and its exactness checks hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import inference_speed
from tests.conftest import phantom, tiny_affine, write_nifti

TINY = ["--device", "cpu", "--roi", "8", "8", "8", "--num-downs", "2", "--ngf", "4", "--sw-batch-size", "3"]


def test_exactness_checks_hold() -> None:
    differences = inference_speed.check(torch.device("cpu"))
    assert differences["constant_vs_monai_default"] <= 1e-5
    assert differences["gaussian_pointwise_vs_direct"] <= 1e-5


def test_speed_run_writes_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "speed.json"
    inference_speed.main([*TINY, "--shape", "20", "18", "10", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["shape"] == [20, 18, 10] and report["generator"]["num_downs"] == 2
    assert report["medxlate_strategy"]["roi_size"] == [8, 8, 8] and report["medxlate_strategy"]["bf16"] is False
    methods = [row["method"] for row in report["rows"]]
    assert methods[0].startswith("monai default") and methods[1] == "medxlate infer_volume"
    ours = report["rows"][1]
    assert ours["speedup_vs_monai_default"] == pytest.approx(report["rows"][0]["seconds"] / ours["seconds"])
    assert 0 < ours["max_abs_diff_vs_monai"] < 1.0  # blending differs (Gaussian vs constant), same model
    assert "medxlate infer_volume" in capsys.readouterr().out


def test_real_input_mode_checks_the_grid(tmp_path: Path) -> None:
    ct, _, _ = phantom(0)
    write_nifti(ct, tmp_path / "ct.nii.gz", tiny_affine())
    out = tmp_path / "real.json"
    inference_speed.main([*TINY, "--input", str(tmp_path / "ct.nii.gz"), "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["input_shape"] == list(ct.shape)
    assert report["output_on_input_grid"] is True and report["output_finite"] is True
    assert set(report["seconds"]) == {"load", "translate", "save"}
