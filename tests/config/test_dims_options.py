"""2D-only and 3D-only data options are rejected by name in the other kind of config."""

from __future__ import annotations

import pytest

from medxlate.config import validate_config
from medxlate.errors import ConfigError


def _config(**data: object) -> dict:
    return {"name": "x", "data": {"dataset": "d", **data}}


def test_3d_config_needs_a_patch_size() -> None:
    with pytest.raises(ConfigError, match=r"data\.patch_size: required with data\.spatial_dims: 3"):
        validate_config(_config(spatial_dims=3))


def test_3d_config_rejects_context_slices_by_name() -> None:
    with pytest.raises(
        ConfigError, match=r"data\.context_slices: 2D-only option\(s\) in a config with data\.spatial_dims: 3"
    ):
        validate_config(_config(spatial_dims=3, patch_size=[16, 16, 16], context_slices=1))


def test_2d_config_rejects_3d_options_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_config(patch_size=[16, 16, 16], foreground_prob=0.5))
    assert "data.foreground_prob, data.patch_size: 3D-only option(s) in a config with data.spatial_dims: 2" in str(
        info.value
    )


def test_valid_3d_config_and_defaults() -> None:
    cfg = validate_config(_config(spatial_dims=3, patch_size=[32, 32, 16], patches_per_volume=4))
    assert cfg.data.patch_size == (32, 32, 16)
    assert (cfg.data.patches_per_volume, cfg.data.foreground_prob, cfg.data.context_slices) == (4, 0.9, 0)
    assert (cfg.data.cache_dir, cfg.data.cache_volumes) == (None, 4)


def test_patch_size_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"data\.patch_size\.1': expected an integer in \[1, 1024\] \(found 0\)"):
        validate_config(_config(spatial_dims=3, patch_size=[16, 0, 16]))


def test_lambda_adv_is_a_real_option() -> None:
    assert validate_config({**_config(), "loss": {"lambda_adv": 0}}).loss.lambda_adv == 0.0
    with pytest.raises(ConfigError, match=r"loss\.lambda_adv"):
        validate_config({**_config(), "loss": {"lambda_adv": -1}})


def test_shipped_3d_recipe_loads() -> None:
    from pathlib import Path

    from medxlate.config import load_config
    from medxlate.pipeline import load_pipeline
    from medxlate.training.setup import inference_strategy

    repo = Path(__file__).resolve().parents[2]
    recipe = load_pipeline(repo / "pipelines" / "ct2mr_3d.yaml")
    cfg = load_config(repo / recipe.config, dict(recipe.overrides))
    windows = inference_strategy(cfg)
    assert (cfg.data.spatial_dims, cfg.data.patch_size, windows.roi_size) == (3, (96, 96, 16), (96, 96, 16))
    assert (windows.overlap, windows.sw_batch_size) == (0.25, 16)
    multiple = 2 ** cfg.model.generator_params["num_downs"]
    assert all(size % multiple == 0 for size in (*cfg.data.patch_size, *windows.roi_size))
    assert min(cfg.data.patch_size) >= 3 * 2 ** cfg.model.discriminator_params["n_layers"]
    defaults = load_config(repo / "configs" / "ct2mr_3d.yaml")
    assert all(size % 2 ** defaults.model.generator_params["num_downs"] == 0 for size in defaults.data.patch_size)
