"""X-ray -> CT training: DRR items, the grid cache, loss terms, the unconditional step, config checks, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from medxlate.checkpoint import load_checkpoint
from medxlate.config import validate_config
from medxlate.data import read_dataset
from medxlate.data.ct_source import ct_cases
from medxlate.data.drr import DrrTrainingSet, build_grid_cache
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import ConfigError, InputDataError, RegistryError
from medxlate.inference import LiftStrategy, strategy_from_dict
from medxlate.models import build_discriminator, build_generator
from medxlate.models.loss_terms import LossInputs, ProjectionContext, weighted_terms
from medxlate.tasks import get_task
from medxlate.tracking import NullTracker
from medxlate.training import fit
from medxlate.training.steps import GanModules, train_step
from medxlate.transforms.intensity import window_to_unit
from medxlate.xray.cases import render_views
from medxlate.xray.drr_data import ViewAugmentation
from tests.conftest import tiny_config

WINDOW = (-1024.0, 2048.0)
SIZE, FOV = 16, 40.0  # the phantom spans 30 x 30 x 36 mm


def _xray_config(dataset: Path, out: Path, **xray: Any) -> dict:
    raw = tiny_config(dataset, out, epochs=1, decay_epochs=0)
    raw["data"] = {"dataset": str(dataset), "task": "xray2ct", "spatial_dims": 3, "batch_size": 2}
    raw["data"]["source_window"] = list(WINDOW)
    raw["model"] = {
        "generator": "x2ct",
        "generator_params": {"num_downs": 2, "ngf": 4},
        "discriminator": "patchgan",
        "discriminator_params": {"ndf": 4, "n_layers": 1},
    }
    raw["loss"] = {"lambda_adv": 0.1, "lambda_l1": 0.0, "terms": {"mse": 10.0, "projection": 10.0}}
    raw["xray"] = {"size": SIZE, "fov_mm": FOV, "items_per_volume": 2, **xray}
    return raw


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import write_paired_folder

    root = tmp_path_factory.mktemp("xray")
    prepare_dataset(write_paired_folder(root / "pairs"), root / "dataset")
    return root / "dataset"


class _Recorder(NullTracker):
    """A tracker that keeps the metrics it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, float] = {}

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        self.metrics.update(values)


def test_tiny_xray_run_writes_a_lift_checkpoint_and_validates_in_hu(dataset: Path, tmp_path: Path) -> None:
    tracker = _Recorder()
    result = fit(validate_config(_xray_config(dataset, tmp_path / "run")), tracker)
    content = load_checkpoint(result.checkpoint)
    assert content["preprocessing"]["task"] == get_task("xray2ct").to_dict()
    assert (content["source_modality"], content["target_modality"]) == ("XR", "CT")
    strategy = strategy_from_dict(content["inference"])
    assert strategy == LiftStrategy(("PA",), SIZE, FOV, 949.0, 541.0)
    spec = content["generator_spec"]
    assert (spec["name"], spec["in_channels"], spec["params"]["views"], spec["params"]["image_size"]) == (
        "x2ct",
        1,
        ["PA"],
        SIZE,
    )
    assert content["discriminator"]["net.initial_conv.conv.weight"].shape[1] == 1  # judges the CT alone
    (values,) = result.per_case.values()
    assert values["data_range"] == pytest.approx(WINDOW[1] - WINDOW[0])
    assert 0.0 <= values["reprojection_mae"] <= 1.0 and -1.0 <= values["reprojection_ssim"] <= 1.0
    for name in ("train/loss_g_mse", "train/loss_g_projection", "train/loss_g_adversarial", "train/loss_d"):
        assert np.isfinite(tracker.metrics[name]), name
    assert "val/reprojection_mae" in tracker.metrics
    data = content["training_data"]  # what the model card shows: no identifiers, a digest and case counts
    assert set(data) == {"digest", "digest_of", "cases"} and len(data["digest"]) == 64
    assert data["cases"]["train"] >= 1 and data["cases"]["val"] == len(result.per_case)


def test_drr_items_are_seeded_per_item_and_epoch_and_match_their_ct(dataset: Path, tmp_path: Path) -> None:
    strategy = LiftStrategy(("PA", "LL"), SIZE, FOV, 949.0, 541.0)
    data = read_dataset(dataset)
    cached = build_grid_cache(ct_cases(data, "train"), SIZE, FOV, 0.5, tmp_path / "cache")
    plain = DrrTrainingSet(cached, strategy.geometries(), WINDOW, 3, 0.0, None, seed=1)
    item = plain[4]  # second CT
    ct = torch.from_numpy(np.array(cached[1].ct()))[None]
    torch.testing.assert_close(item["target"], window_to_unit(ct, WINDOW))
    torch.testing.assert_close(item["source"], render_views(ct[None], cached[1].affine, strategy.geometries())[0])
    assert item["source"].shape == (2, SIZE, SIZE)

    noisy = DrrTrainingSet(cached, strategy.geometries(), WINDOW, 3, 5.0, ViewAugmentation(), seed=1)
    first, again = noisy[4], noisy[4]
    torch.testing.assert_close(first["source"], again["source"], rtol=0, atol=0)
    torch.testing.assert_close(first["target"], again["target"], rtol=0, atol=0)
    assert not torch.equal(first["target"], item["target"])  # the patient is turned
    clean = render_views(((first["target"] + 1) / 2 * 3072 - 1024)[None], cached[1].affine, strategy.geometries())[0]
    torch.testing.assert_close(first["views_clean"], clean, atol=2e-3, rtol=0)  # views of the turned CT
    noisy.set_epoch(1)
    assert not torch.equal(noisy[4]["source"], first["source"])


def test_grid_cache_is_reused_and_keyed_by_the_grid(dataset: Path, tmp_path: Path) -> None:
    data = read_dataset(dataset)
    cases = ct_cases(data, "train")
    first = build_grid_cache(cases, SIZE, FOV, 0.5, tmp_path)
    stamp = first[0].ct_path.stat().st_mtime_ns
    second = build_grid_cache(cases, SIZE, FOV, 0.5, tmp_path)
    assert second[0].ct_path == first[0].ct_path and second[0].ct_path.stat().st_mtime_ns == stamp
    other = build_grid_cache(cases, SIZE, 48.0, 0.5, tmp_path)
    assert other[0].ct_path.parent.parent != first[0].ct_path.parent.parent
    record = json.loads((first[0].ct_path.parent / "record.json").read_text())
    assert record["spacing_mm"] == pytest.approx(FOV / SIZE)
    with pytest.raises(InputDataError, match=r"source\.nii\.gz: CT spans.*xray\.min_coverage"):
        build_grid_cache(cases, SIZE, 400.0, 0.5, tmp_path)  # 30 mm of a 400 mm field


def test_projection_term_is_zero_on_the_truth_and_has_gradients(dataset: Path, tmp_path: Path) -> None:
    strategy = LiftStrategy(("PA",), SIZE, FOV, 949.0, 541.0)
    data = read_dataset(dataset)
    (cached, _) = build_grid_cache(ct_cases(data, "train"), SIZE, FOV, 0.5, tmp_path)
    ct = torch.from_numpy(np.array(cached.ct()))[None, None]
    views = render_views(ct, strategy.grid_affine(), strategy.geometries())
    context = ProjectionContext(strategy.grid_affine(), strategy.geometries(), WINDOW)
    ((name, weight, term),) = weighted_terms({"projection": 2.0})
    truth = window_to_unit(ct, WINDOW)
    assert (name, weight) == ("projection", 2.0)
    assert float(term(LossInputs(truth, truth, views, views, context))) == pytest.approx(0.0, abs=1e-6)
    fake = (truth + 0.2 * torch.randn_like(truth)).clamp(-1, 1).requires_grad_(True)
    loss = term(LossInputs(fake, truth, views, views, context))
    loss.backward()
    assert float(loss.detach()) > 0.01 and fake.grad is not None and float(fake.grad.abs().sum()) > 0
    with pytest.raises(ConfigError, match="xray2ct"):
        term(LossInputs(truth, truth, views))
    with pytest.raises(RegistryError, match="did you mean 'projection'"):
        weighted_terms({"projections": 1.0})


def test_unconditional_step_feeds_the_discriminator_the_volume_alone() -> None:
    torch.manual_seed(0)
    generator = build_generator("x2ct", 3, 1, 1, views=["PA"], image_size=8, num_downs=2, ngf=4)
    discriminator = build_discriminator("patchgan", 3, 1, ndf=4, n_layers=1)
    modules = GanModules(
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters()),
        torch.optim.Adam(discriminator.parameters()),
    )
    views, target = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 1, 8, 8, 8) * 2 - 1
    losses = train_step(
        modules, views, target, _lsgan(), 0.0, bf16=False, terms=weighted_terms({"mse": 10.0}), conditional=False
    )
    assert set(losses) == {"loss_d", "loss_g", "loss_g_adversarial", "loss_g_l1", "loss_g_mse"}
    expected = float(losses["loss_g_adversarial"]) + 10.0 * float(losses["loss_g_mse"])
    assert float(losses["loss_g"]) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(RuntimeError):  # a conditional step would concatenate 2D views onto a volume
        train_step(modules, views, target, _lsgan(), 0.0, bf16=False, conditional=True)


def _lsgan() -> Any:
    from medxlate.models import get_adversarial_loss

    return get_adversarial_loss("lsgan")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model": {"generator": "unet"}}, "needs a views -> volume generator"),
        ({"data": {"patch_size": [16, 16, 16]}}, "no data.patch_size"),
        ({"xray": {"views": []}}, "at least one view"),
        ({"xray": {"views": ["PA", "XX"]}}, "XX"),
        ({"xray": {"sad_mm": 1000.0}}, "sad_mm"),
        ({"loss": {"terms": {"l1": 1.0}}}, "lambda_l1"),
        ({"loss": {"terms": {"projektion": 1.0}}}, "did you mean 'projection'"),
    ],
)
def test_xray_config_errors_are_named(tmp_path: Path, change: dict, match: str) -> None:
    raw = _xray_config(tmp_path / "dataset", tmp_path / "run")
    for section, values in change.items():
        raw[section] = {**raw[section], **values}
    with pytest.raises(ConfigError, match=match):
        validate_config(raw)


def test_xray_options_are_refused_outside_xray2ct(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run")
    with pytest.raises(ConfigError, match="xray: settings"):
        validate_config({**raw, "xray": {"size": 32}})
    with pytest.raises(ConfigError, match="projection: needs views"):
        validate_config({**raw, "loss": {"terms": {"projection": 1.0}}})
    with pytest.raises(ConfigError, match="'x2ct' needs views"):
        validate_config({**raw, "model": {**raw["model"], "generator": "x2ct"}})
    cfg = validate_config(raw)
    assert cfg.xray is None
    from medxlate.config import flatten_config

    assert not any(key.startswith("xray") for key in flatten_config(cfg))


def test_views_in_generator_params_are_refused(dataset: Path, tmp_path: Path) -> None:
    raw = _xray_config(dataset, tmp_path / "run")
    raw["model"]["generator_params"] = {"num_downs": 2, "ngf": 4, "views": ["LL"]}
    with pytest.raises(ConfigError, match=r"xray\.views"):
        fit(validate_config(raw))


def test_a_dataset_without_ct_is_refused(tmp_path: Path) -> None:
    from medxlate.data.dataset import Dataset

    fake = Dataset(root=tmp_path, name="mr-pet", source_modality="MR", target_modality="PT", cases=())
    with pytest.raises(InputDataError, match="trains on CT volumes"):
        ct_cases(fake, "train")


def test_metatensor_views_render_on_the_isocentre() -> None:
    """Rendering depends only on the grid's spacing, not on where the grid sits: the isocentre is its centre."""
    strategy = LiftStrategy(("PA",), SIZE, FOV, 949.0, 541.0)
    ct = torch.full((1, 1, SIZE, SIZE, SIZE), -1000.0)
    ct[..., 4:12, 6:10, 2:14] = 300.0
    shifted = strategy.grid_affine().clone()
    shifted[:3, 3] += torch.tensor([100.0, -40.0, 7.0], dtype=torch.float64)
    torch.testing.assert_close(
        render_views(ct, strategy.grid_affine(), strategy.geometries()),
        render_views(MetaTensor(ct), shifted, strategy.geometries()),
    )


def test_lift_montage_shows_coronal_slices_as_a_pa_radiograph_is_read() -> None:
    from medxlate.training.montage import make_lift_montage

    real = torch.full((16, 16, 16), -1000.0)
    real[12:, 8, 12:] = 1000.0  # patient's right (high x in RAS) and superior (high z), on the central coronal slice
    views = torch.full((1, 16, 16), -1.0)
    image = make_lift_montage(views, real.clone(), real, WINDOW, ["PA"])
    assert image.dtype == np.uint8 and image.shape[2] == 3
    zoom = 192 // 16
    rows = image.shape[0]
    panel = image[rows - 16 * zoom :, (16 * zoom + 2) * 2 : (16 * zoom + 2) * 2 + 16 * zoom, 0]  # the real CT
    assert panel.shape == (16 * zoom, 16 * zoom)
    bright = np.argwhere(panel == 255)
    assert bright[:, 0].max() < 4 * zoom and bright[:, 1].max() < 4 * zoom  # top-left: superior, patient right
    assert (panel == 0).mean() > 0.9  # -1000 HU is the bottom of the display window


def test_registered_xray_model_predicts_a_ct_from_views(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from medxlate.api import train
    from medxlate.inference import Translator

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    raw = _xray_config(dataset, tmp_path / "run")
    raw["tracking"] = {"backend": "mlflow", "register_as": "tiny_xray"}
    result = train(validate_config(raw))
    model = mlflow.pyfunc.load_model("models:/tiny_xray/1")
    inputs = model.metadata.get_input_schema().inputs[0]
    assert inputs.shape == (-1, -1, -1) and inputs.type == np.dtype(np.float32)  # (V, S, S) views
    views = torch.rand(1, SIZE, SIZE) * 2 - 1
    expected = Translator.from_checkpoint(result.checkpoint, device="cpu").translate_views(views)
    np.testing.assert_allclose(model.predict(views.numpy()), expected.as_tensor().numpy(), rtol=0, atol=0)


def test_resuming_with_another_drr_geometry_is_refused() -> None:
    from medxlate.training.resume import config_differences

    saved = {"xray": {"views": ["PA"], "fov_mm": 320.0, "sdd_mm": 949.0}, "data": {"task": "xray2ct"}}
    current = {"xray": {"views": ["PA"], "fov_mm": 300.0, "sdd_mm": 949.0}, "data": {"task": "xray2ct"}}
    assert config_differences(saved, current) == ["xray.fov_mm: checkpoint 320.0, config 300.0"]
    assert config_differences(saved, saved) == []
