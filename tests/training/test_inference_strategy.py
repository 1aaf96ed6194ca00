"""The config decides the inference strategy that validation uses and the checkpoint records."""

from __future__ import annotations

from pathlib import Path

import pytest

from medxlate.config import validate_config
from medxlate.errors import ConfigError
from medxlate.inference import SliceStrategy, SlidingWindowStrategy
from medxlate.training.setup import inference_strategy
from tests.conftest import tiny_config


def _config(tmp_path: Path, **eval_settings: object):  # type: ignore[no-untyped-def]
    raw = tiny_config(tmp_path / "dataset", tmp_path / "run")
    raw["data"]["context_slices"] = 2
    raw["eval"] = {"sw_batch_size": 3, **eval_settings}
    return validate_config(raw)


def test_2d_models_run_slice_wise_with_their_context(tmp_path: Path) -> None:
    assert inference_strategy(_config(tmp_path)) == SliceStrategy(context_slices=2, sw_batch_size=3)


def test_3d_models_run_sliding_windows_from_the_eval_settings(tmp_path: Path) -> None:
    cfg = _config(tmp_path, roi_size=[32, 32, 16], overlap=0.5, blend_mode="constant")
    volumetric = cfg.model_copy(update={"data": cfg.data.model_copy(update={"spatial_dims": 3})})
    assert inference_strategy(volumetric) == SlidingWindowStrategy(
        roi_size=(32, 32, 16), overlap=0.5, mode="constant", sw_batch_size=3
    )
    no_window = cfg.model_copy(
        update={
            "data": cfg.data.model_copy(update={"spatial_dims": 3}),
            "eval": cfg.eval.model_copy(update={"roi_size": None}),
        }
    )
    with pytest.raises(ConfigError, match=r"eval.roi_size: a 3D model needs a sliding-window size"):
        inference_strategy(no_window)
    patched = no_window.model_copy(update={"data": no_window.data.model_copy(update={"patch_size": (64, 48, 16)})})
    assert inference_strategy(patched) == SlidingWindowStrategy(
        roi_size=(64, 48, 16), overlap=0.5, mode="constant", sw_batch_size=3
    )


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"roi_size": [32, 0, 16]}, "roi_size"), ({"overlap": 1.0}, "overlap"), ({"blend_mode": "max"}, "blend_mode")],
)
def test_bad_window_settings_are_rejected_by_name(tmp_path: Path, settings: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        _config(tmp_path, **settings)
