from __future__ import annotations

from pathlib import Path

import pytest

from medxlate.config import apply_overrides, flatten_config, load_config, parse_override, validate_config
from medxlate.errors import ConfigError
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_loads_with_overrides() -> None:
    cfg = load_config(REPO / "configs" / "ct2mr_2d.yaml", overrides={"train.epochs": 2, "train.decay_epochs": 1})
    assert cfg.train.epochs == 2
    assert cfg.loss.lambda_l1 == 100.0
    assert cfg.experiment_name == cfg.name


def test_unknown_key_names_path_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndata:\n  dataset: d\n  batch_sise: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "'data.batch_sise': unknown key, did you mean 'batch_size'?" in message


def test_wrong_type_names_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"'train.epochs'.*found 'two'"):
        validate_config({"name": "x", "data": {"dataset": "d"}, "train": {"epochs": "two"}})


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"name": "x", "data": {"dataset": "d", "source_window": [10, -10]}, "loss": {"lamda": 1}})
    assert "data.source_window" in str(info.value) and "loss.lamda" in str(info.value)


def test_missing_required_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'data': required key is missing"):
        validate_config({"name": "x"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_config_is_frozen() -> None:
    cfg = validate_config({"name": "x", "data": {"dataset": "d"}})
    with pytest.raises(Exception, match="frozen"):
        cfg.train.epochs = 3  # type: ignore[misc]


def test_overrides_and_parse() -> None:
    raw = {"train": {"epochs": 5}}
    merged = apply_overrides(raw, {"train.epochs": 2, "model.generator_params.ngf": 8})
    assert merged == {"train": {"epochs": 2}, "model": {"generator_params": {"ngf": 8}}}
    assert raw == {"train": {"epochs": 5}}
    assert parse_override("data.pixdim=[1, 1, 2.5]") == ("data.pixdim", [1, 1, 2.5])
    with pytest.raises(ConfigError, match=r"KEY\.PATH=VALUE"):
        parse_override("train.epochs")
    with pytest.raises(ConfigError, match=r"'train\.epochs' holds a int"):
        apply_overrides({"train": {"epochs": 5}}, {"train.epochs.x": 1})


@pytest.mark.parametrize(("epochs", "expected"), [(200, 100), (2, 1), (1, 0), (7, 3)])
def test_decay_epochs_defaults_to_the_last_half_of_epochs(epochs: int, expected: int) -> None:
    cfg = load_config(REPO / "configs" / "ct2mr_2d.yaml", overrides={"train.epochs": epochs})
    assert cfg.train.decay_epochs == expected
    assert cfg.model_dump(mode="json")["train"]["decay_epochs"] == expected  # logged resolved


def test_decay_epochs_cannot_exceed_epochs() -> None:
    with pytest.raises(ConfigError, match="decay_epochs"):
        validate_config({"name": "x", "data": {"dataset": "d"}, "train": {"epochs": 2, "decay_epochs": 3}})


def test_flatten_config() -> None:
    flat = flatten_config(validate_config({"name": "x", "data": {"dataset": "d"}}))
    assert flat["train.lr"] == "0.0002"
    assert flat["model.generator_params.ngf"] == "64"
    assert flat["data.source_window"] == "[-1024.0, 3071.0]"


def test_unknown_registry_names_fail_at_validation() -> None:
    raw = tiny_config(Path("ds"), Path("run"))
    raw["loss"] = {"adversarial": "lsgn"}
    raw["model"]["discriminator"] = "patchgun"
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    message = str(info.value)
    assert "'loss.adversarial': unknown adversarial loss 'lsgn', did you mean 'lsgan'?" in message
    assert "'model.discriminator': unknown discriminator 'patchgun', did you mean 'patchgan'?" in message
