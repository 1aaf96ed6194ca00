"""The X-ray -> CT training benchmark follows the configs and runs end to end at a tiny size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import xray_train_speed as bench
from benchmarks.drr_speed import phantom_hu
from medxlate.config import load_config
from medxlate.pipeline import load_pipeline
from medxlate.training.lift import drr_training_set

CONFIG, PIPELINE = bench.ROOT / "configs/xray2ct.yaml", bench.ROOT / "pipelines/xray2ct.yaml"


def test_settings_follow_the_config_and_the_demo_overrides() -> None:
    found = bench.settings(CONFIG, PIPELINE, ["demo", "default"], ["single", "biplanar"])
    assert [(s.name, s.views) for s in found] == [
        ("demo", "single"),
        ("demo", "biplanar"),
        ("default", "single"),
        ("default", "biplanar"),
    ]
    config = load_config(CONFIG)
    demo = load_config(CONFIG, load_pipeline(PIPELINE).overrides)
    for setting in found:
        expected = demo if setting.name == "demo" else config
        cfg = setting.cfg
        assert cfg.xray.views == (("PA",) if setting.views == "single" else ("PA", "LL"))
        assert (cfg.xray.size, cfg.xray.fov_mm) == (expected.xray.size, expected.xray.fov_mm)
        assert cfg.model == expected.model and cfg.loss == expected.loss and cfg.data == expected.data
        assert setting.cfg_no_projection.loss.terms == {**expected.loss.terms, "projection": 0.0}
        assert setting.cfg_no_projection.model == cfg.model
    # the two settings differ as the configs say today (the demo is the smaller one)
    assert demo.xray.size < config.xray.size and found[0].cfg.xray.size == demo.xray.size


def test_tiny_settings_shrink_only_the_grid_and_the_networks() -> None:
    config = load_config(CONFIG)
    tiny = bench.settings(CONFIG, PIPELINE, ["default"], ["biplanar"], tiny=True)[0].cfg
    assert (tiny.xray.size, tiny.model.generator_params["num_downs"], tiny.model.discriminator_params["ndf"]) == (
        16,
        2,
        4,
    )
    assert tiny.model.generator_params["norm"] == config.model.generator_params["norm"]
    assert tiny.loss == config.loss and tiny.xray.views == ("PA", "LL")
    assert tiny.xray.pose_jitter_deg == config.xray.pose_jitter_deg and tiny.xray.augment == config.xray.augment


def test_phantom_grid_ct_lies_on_the_model_grid(tmp_path: Path) -> None:
    cfg = bench.settings(CONFIG, PIPELINE, ["demo"], ["single"], tiny=True)[0].cfg
    size, fov = cfg.xray.size, cfg.xray.fov_mm
    volume = bench.phantom_grid_ct(cfg, tmp_path / "ct")
    ct = torch.from_numpy(np.array(volume.ct()))
    assert volume.record["fov_mm"] == fov and volume.record["size"] == size
    torch.testing.assert_close(volume.affine[:3, :3], torch.eye(3, dtype=torch.float64) * (fov / size))
    # the phantom fills the field on the model grid's own lattice: resampling it is the identity
    hu, affine = phantom_hu(size, fov / size)
    torch.testing.assert_close(volume.affine, affine)
    torch.testing.assert_close(ct, hu, atol=1e-3, rtol=0)
    np.testing.assert_array_equal(np.asarray(volume.mask()), (hu > -500).numpy().astype(np.uint8))
    item = drr_training_set(cfg, [volume])[0]
    assert item["source"].shape == item["views_clean"].shape == (1, size, size)
    assert item["target"].shape == (1, size, size, size)


def test_tiny_run_writes_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "xray.json"
    tiny = ["--tiny", "--device", "cpu", "--threads", "1", "--steps", "1", "--warmup", "0", "--items", "1"]
    bench.main([*tiny, "--out", str(out)])
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [(r["setting"], r["views"]) for r in rows] == [
        ("demo", ["PA"]),
        ("demo", ["PA", "LL"]),
        ("default", ["PA"]),
        ("default", ["PA", "LL"]),
    ]
    for row in rows:
        assert row["size"] == 16 and row["batch"] == 2 and row["bf16"] is False
        assert row["generator"] == {"name": "x2ct", "num_downs": 2, "ngf": 4, "norm": "instance"}
        # the full step computes the configured terms; the plain step leaves the projection term out
        assert row["loss_parts"] == [
            "loss_d",
            "loss_g",
            "loss_g_adversarial",
            "loss_g_l1",
            "loss_g_mse",
            "loss_g_projection",
        ]
        assert row["no_projection_loss_parts"] == ["loss_d", "loss_g", "loss_g_adversarial", "loss_g_l1", "loss_g_mse"]
        assert row["samples_per_s"] == pytest.approx(row["batch"] * row["steps_per_s"])
        assert row["steps_per_s"] == pytest.approx(1000 / row["step_ms"])
        assert row["projection_share"] == pytest.approx(1 - row["no_projection_step_ms"] / row["step_ms"])
        assert row["data_vs_step"] == pytest.approx(row["data_items_per_s"] / row["samples_per_s"])
        assert all(
            math.isfinite(row[k]) and row[k] > 0 for k in ("step_ms", "no_projection_step_ms", "data_ms_per_item")
        )
        assert row["peak_memory_gib"] is None
    assert report["tiny"] is True and "partial" not in report
    printed = capsys.readouterr().out
    assert bench.HEADER in printed and printed.count("16³") == 4
