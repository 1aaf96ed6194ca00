"""Evaluation report: case ranking, display orientation of the planes, PNGs written and logged."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from medxlate import report
from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.evaluation import evaluate
from medxlate.tracking import NullTracker
from medxlate.training import fit
from tests.conftest import tiny_config


def test_worst_and_best_follow_the_metric_direction() -> None:
    per_case = {
        "a": {"mae": 10.0, "ssim": 0.9},
        "b": {"mae": 30.0, "ssim": 0.5},
        "c": {"mae": math.nan, "ssim": 0.7},
        "d": {"mae": 20.0, "ssim": math.nan},
    }
    assert report.worst_and_best(per_case, "mae") == (["b"], ["a"])
    assert report.worst_and_best(per_case, "ssim") == (["b"], ["a"])
    assert report.worst_and_best(per_case, "ssim", count=2) == (["b"], ["a", "c"])  # never in both
    assert report.worst_and_best({"only": {"mae": 1.0}}, "mae") == ([], ["only"])


def test_planes_are_in_radiological_display_orientation() -> None:
    # value = 100 x + 10 y + z on a RAS grid: x towards patient right, y anterior, z superior
    x, y, z = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing="ij")
    volume = 100 * x + 10 * y + z
    planes = report.orthogonal_planes(volume, (1, 2, 3))
    axial, coronal, sagittal = planes["axial"], planes["coronal"], planes["sagittal"]
    assert axial.shape == (5, 4) and coronal.shape == (6, 4) and sagittal.shape == (6, 5)
    assert axial[0, 0] == 100 * 3 + 10 * 4 + 3  # top left: most anterior, patient's right
    assert coronal[0, 0] == 100 * 3 + 10 * 2 + 5  # top left: most superior, patient's right
    assert sagittal[0, 0] == 100 * 1 + 10 * 4 + 5  # top left: most superior, most anterior
    assert report.plane_aspect("coronal", (0.5, 0.7, 2.0)) == 4.0
    assert report.mask_centre(np.pad(np.ones((3, 3, 3)), ((0, 2), (1, 1), (3, 1)))) == (1, 2, 4)


def test_evaluation_draws_and_logs_the_report(paired_folder: Path, tmp_path: Path) -> None:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    checkpoint = fit(validate_config(tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=1, decay_epochs=0)))
    tracker = NullTracker()
    result = evaluate(checkpoint.checkpoint, tmp_path / "dataset", tmp_path / "eval", split="train", report=True,
                      tracker=tracker)  # fmt: skip
    assert [p.name for p in result.pictures] == ["metrics_boxplots.png", "worst_best_cases.png"]
    with Image.open(result.pictures[0]) as boxplots, Image.open(result.pictures[1]) as montage:
        assert boxplots.format == "PNG" and boxplots.size[0] > boxplots.size[1]  # three plots side by side
        assert montage.format == "PNG" and montage.size[1] > montage.size[0]  # 2 cases x 3 planes rows
    assert [p.name for p in tracker.artifacts] == [
        "metrics_per_case.csv",
        "metrics_summary.json",
        "metrics_boxplots.png",
        "worst_best_cases.png",
    ]
    plain = evaluate(checkpoint.checkpoint, tmp_path / "dataset", tmp_path / "plain", split="val")
    assert plain.pictures == () and not list((tmp_path / "plain").glob("*.png"))
