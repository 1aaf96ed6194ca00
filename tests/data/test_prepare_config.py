"""The prepare config: the shipped YAML validates; typos and bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from medxlate.config import load_prepare_config
from medxlate.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "prepare_ct_mr.yaml"


def test_shipped_config_validates() -> None:
    cfg = load_prepare_config(CONFIG)
    assert cfg.pairing.target.include == ("t1",) and cfg.registration.method == "rigid"
    assert cfg.pairing.date_window_days == 30 and cfg.splits.test_fraction == 0.1


def test_defaults_without_a_file() -> None:
    cfg = load_prepare_config(None, {"registration.method": "rigid"})
    assert cfg.registration.method == "rigid" and cfg.pairing.source.modality == "CT"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"pairing.target.inclde": ["t1"]}, "'pairing.target.inclde': unknown key, did you mean 'include'?"),
        ({"pairing.source.include": ["(unclosed"]}, "is not a valid regular expression"),
        ({"registration.shrink_factors": [4, 2]}, "must be non-empty and of equal length"),
        ({"splits.val_fraction": 0.6, "splits.test_fraction": 0.5}, "val_fraction + test_fraction is 1.1"),
        ({"registration.seed": 0}, "'registration.seed': Input should be greater than or equal to 1"),
        ({"registration.method": "bspline"}, "'registration.method': Input should be 'none', 'rigid' or 'deformable'"),
        ({"registration.deformable.shrink_factors": [4, 2, 1]}, "must be non-empty and of equal length"),
        (
            {"registration.deformable.grid_spacing": 30},
            "'registration.deformable.grid_spacing': unknown key, did you mean 'grid_spacing_mm'?",
        ),
        (
            {"registration.deformable.grid_spacing_mm": 1},
            "'registration.deformable.grid_spacing_mm': Input should be greater than or equal to 5",
        ),
        ({"registration.deformable.iterations": 0}, "'registration.deformable.iterations': expected an integer"),
    ],
)
def test_errors_name_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="invalid config") as info:
        load_prepare_config(CONFIG, overrides)
    assert message in str(info.value)


def test_deformable_keys_load_and_only_deformable_fingerprints_them() -> None:
    overrides = {"registration.method": "deformable", "registration.deformable.grid_spacing_mm": 30}
    cfg = load_prepare_config(CONFIG, overrides)
    assert cfg.registration.method == "deformable" and cfg.registration.deformable.grid_spacing_mm == 30
    assert cfg.registration.deformable.shrink_factors == (2, 1)
    assert cfg.output_settings()["registration"]["deformable"]["grid_spacing_mm"] == 30
    rigid = load_prepare_config(CONFIG, {"registration.deformable.grid_spacing_mm": 30}).output_settings()
    assert "deformable" not in rigid["registration"]  # rigid datasets keep their fingerprints
    assert rigid == load_prepare_config(CONFIG).output_settings()
