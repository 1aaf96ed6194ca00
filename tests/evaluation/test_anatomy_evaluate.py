"""`evaluate` with anatomy: HU structures of a synthetic CT, per-label Dice/HD95 through a segmenter."""

from __future__ import annotations

import csv
import json
import math
import shlex
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medxlate.config import validate_config
from medxlate.data import read_dataset
from medxlate.data.prepare import prepare_dataset
from medxlate.data.roles import orient_dataset
from medxlate.evaluation import evaluate
from medxlate.inference import Translator
from medxlate.io import load_volume
from medxlate.tasks import get_task
from medxlate.tracking import NullTracker
from medxlate.training import fit
from tests.conftest import tiny_affine, tiny_config, write_nifti, write_paired_folder
from tests.metrics.test_anatomy import reference_hd95
from tests.test_cli import run_cli

IMAGE_COLUMNS = ["ssim", "psnr", "mae", "ssim_body", "psnr_body", "mae_body", "data_range"]  # as before anatomy
SEGMENTER_SCRIPT = """
import sys
import nibabel as nib
import numpy as np
image = nib.load(sys.argv[1])
data = image.get_fdata()
labels = np.zeros(data.shape, dtype=np.uint8)
labels[data < np.percentile(data, 25)] = 1
labels[data > np.percentile(data, 90)] = 2
nib.save(nib.Nifti1Image(labels, image.affine), sys.argv[2])
"""


def threshold_labels(image: np.ndarray) -> np.ndarray:
    """What SEGMENTER_SCRIPT computes, in NumPy (the callable segmenter and the expected values)."""
    labels = np.zeros(image.shape, dtype=np.int64)
    labels[image < np.percentile(image, 25)] = 1
    labels[image > np.percentile(image, 90)] = 2
    return labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A phantom dataset whose cases carry organ labels (1 lungs, 2 spine), an MR -> CT and a CT -> MR model."""
    root = tmp_path_factory.mktemp("anatomy")
    pairs = write_paired_folder(root / "pairs")
    manifest = json.loads((pairs / "manifest.json").read_text())
    for case in manifest["cases"]:
        ct = nib.load(pairs / case["files"]["source"]).get_fdata()
        labels = np.zeros(ct.shape, dtype=np.uint8)
        labels[ct < -500] = 1
        labels[ct > 300] = 2
        labels[nib.load(pairs / case["files"]["mask"]).get_fdata() < 0.5] = 0
        write_nifti(labels, pairs / case["id"] / "labels.nii.gz", tiny_affine())
        case["files"]["labels"] = f"{case['id']}/labels.nii.gz"
    (pairs / "manifest.json").write_text(json.dumps(manifest))
    prepare_dataset(pairs, root / "dataset")
    out = {"pairs": pairs, "dataset": root / "dataset", "script": root / "segment.py"}
    out["script"].write_text(SEGMENTER_SCRIPT)
    for task in ("mr2ct", "ct2mr"):
        raw = tiny_config(root / "dataset", root / task, epochs=1, decay_epochs=0)
        raw["data"]["task"] = task
        out[task] = fit(validate_config(raw)).checkpoint
    return out


def _command(script: Path) -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {{input}} {{output}}"


def test_prepare_carries_a_labels_role_that_stays_with_either_direction(trained: dict[str, Path]) -> None:
    dataset = read_dataset(trained["dataset"])
    for case, number in zip(dataset.cases, range(3), strict=True):
        expected = nib.load(trained["pairs"] / f"patient_{number}" / "labels.nii.gz").get_fdata()
        stored = load_volume(case.files["labels"])
        np.testing.assert_array_equal(stored[0].numpy(), expected)
        assert set(np.unique(expected)) == {0, 1, 2}
        np.testing.assert_allclose(np.asarray(stored.affine), tiny_affine(), atol=1e-5)
    swapped = orient_dataset(dataset, get_task("mr2ct"))  # MR -> CT reads the CT -> MR dataset swapped
    for before, after in zip(dataset.cases, swapped.cases, strict=True):
        assert after.files["labels"] == before.files["labels"] and after.source == before.target


def _expected(checkpoint: Path, dataset: Path, split: str) -> dict[str, dict[str, float]]:
    """Anatomy columns computed independently: NumPy Dice, SciPy-EDT HD95, thresholds in NumPy."""
    translator = Translator.from_checkpoint(checkpoint, device="cpu")
    expected: dict[str, dict[str, float]] = {}
    for case in orient_dataset(read_dataset(dataset), translator.preprocessing.task).split(split):
        synthetic = translator(load_volume(case.source), fill_background=False)[0].numpy()
        target = nib.load(case.target)
        real, spacing = target.get_fdata(), tuple(float(z) for z in target.header.get_zooms()[:3])
        body = nib.load(case.mask).get_fdata() > 0.5
        pairs = {
            f"label_{i}": (threshold_labels(synthetic) == i, nib.load(case.files["labels"]).get_fdata() == i)
            for i in (1, 2)
        }
        if translator.target_modality == "CT":
            pairs["bone"] = (body & (synthetic >= 250), body & (real >= 250))
            pairs["air"] = (body & (synthetic <= -400), body & (real <= -400))
        values: dict[str, float] = {}
        for name, (pred, ref) in pairs.items():
            values[f"dice_{name}"] = (
                2 * (pred & ref).sum() / (pred.sum() + ref.sum()) if ref.any() or pred.any() else math.nan
            )
            values[f"hd95_{name}"] = reference_hd95(pred, ref, spacing) if pred.any() and ref.any() else math.nan
        expected[case.id] = values
    return expected


def test_mr2ct_structures_and_labels_from_a_command_segmenter(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", str(trained["mr2ct"]), str(trained["dataset"]), "--out-dir", str(out), "--split", "train"]
    code, stdout, err = run_cli(monkeypatch, capsys, *args, "--no-report", "--segmenter", _command(trained["script"]))
    assert code == 0, err
    rows = {row.pop("case"): row for row in csv.DictReader((out / "metrics_per_case.csv").open())}
    expected = _expected(trained["mr2ct"], trained["dataset"], "train")
    assert rows.keys() == expected.keys() == {"case_000", "case_001"}
    anatomy = ["dice_bone", "hd95_bone", "dice_air", "hd95_air"] + [
        f"{k}_label_{i}" for i in (1, 2) for k in ("dice", "hd95")
    ]
    assert list(rows["case_000"]) == [*IMAGE_COLUMNS, *anatomy]
    finite = 0
    for case, values in expected.items():
        for name, value in values.items():
            if math.isnan(value):
                assert rows[case][name] == "", (case, name)  # undefined: an empty cell, excluded from the mean
            else:
                assert float(rows[case][name]) == pytest.approx(value, rel=1e-5, abs=1e-5), (case, name)
                finite += 1
    assert finite >= 10  # the comparison is not vacuous
    summary = json.loads((out / "metrics_summary.json").read_text())
    for name in anatomy:
        values = [expected[c][name] for c in expected if not math.isnan(expected[c][name])]
        if values:
            assert summary["mean"][name] == pytest.approx(np.mean(values), rel=1e-5, abs=1e-5)
    for name, cases in summary["excluded"].items():
        assert set(summary["undefined"][name]) == set(cases)  # every NaN has its reason
    assert "dice_label_1=" in stdout


def test_a_python_callable_segmenter_and_mlflow_logging(trained: dict[str, Path], tmp_path: Path) -> None:
    seen: list[MetaTensor] = []

    def segmenter(image: MetaTensor) -> torch.Tensor:
        seen.append(image)
        return torch.from_numpy(threshold_labels(image[0].numpy()))[None]

    tracker = NullTracker()
    result = evaluate(
        trained["ct2mr"], trained["dataset"], tmp_path / "eval", device="cpu", segmenter=segmenter, tracker=tracker
    )
    assert len(seen) == 1 and seen[0].shape[0] == 1
    np.testing.assert_allclose(np.asarray(seen[0].affine), tiny_affine(), atol=1e-5)  # the case's grid
    expected = _expected(trained["ct2mr"], trained["dataset"], "val")["case_002"]
    values = result.per_case["case_002"]
    assert "dice_bone" not in values  # an MR target has no HU structures
    assert list(values)[:7] == IMAGE_COLUMNS
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, rel=1e-5, abs=1e-5, nan_ok=True), name
    logged = {k: v[0][1] for k, v in tracker.metrics.items()}
    for name, value in result.summary.items():
        if name.startswith(("dice_", "hd95_")):
            assert logged[f"z_eval/val/{name}"] == pytest.approx(value)
    assert tracker.tables["evaluation/val_default_per_case.json"]["dice_label_1"] == [values["dice_label_1"]]


def test_mr_target_without_segmenter_keeps_the_existing_columns(trained: dict[str, Path], tmp_path: Path) -> None:
    result = evaluate(trained["ct2mr"], trained["dataset"], tmp_path / "eval", device="cpu")
    assert list(result.per_case["case_002"]) == IMAGE_COLUMNS
    assert "undefined" not in json.loads(result.summary_path.read_text())


@pytest.mark.parametrize(
    "segmenter, labels, message",
    [
        ("{script} {{input}}", "labels", r"missing \{output\}"),
        ("no-such-segmenter-tool {{input}} {{output}}", "labels", "program 'no-such-segmenter-tool' not found"),
        ("{python} -c 'raise SystemExit(3)' {{input}} {{output}}", "labels", "exited with 3"),
        ("{script} {{input}} {{output}}", "organs", "no 'organs' file in the dataset"),
    ],
)
def test_segmenter_errors_are_one_clean_line(
    trained: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    segmenter: str,
    labels: str,
    message: str,
) -> None:
    command = segmenter.format(script=_command(trained["script"]).rsplit(" ", 2)[0], python=shlex.quote(sys.executable))
    args = ["evaluate", str(trained["mr2ct"]), str(trained["dataset"]), "--out-dir", str(tmp_path / "eval")]
    code, _, err = run_cli(monkeypatch, capsys, *args, "--no-report", "--segmenter", command, "--labels", labels)
    assert code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and __import__("re").search(message, lines[0]), err
