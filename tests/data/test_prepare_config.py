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
    ],
)
def test_errors_name_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="invalid config") as info:
        load_prepare_config(CONFIG, overrides)
    assert message in str(info.value)
