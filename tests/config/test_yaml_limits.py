"""Hostile YAML and absurd sizes end in a ConfigError naming the problem, never a hang or a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from medxlate.config import load_config, load_prepare_config, parse_override, read_yaml, validate_config
from medxlate.errors import ConfigError
from tests.conftest import tiny_config
from tests.test_cli import run_cli


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the previous one: expands to width**levels leaves."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    assert path.stat().st_size < 600
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml: YAML expands to more than 100000 values"):
        read_yaml(path)
    assert time.perf_counter() - start < 2.0


def test_shared_anchors_within_the_limit_still_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(_alias_bomb(levels=3, width=9) + "base: &b {x: 1}\nmerged: {<<: *b, y: 2}\n")
    data = read_yaml(path)
    assert data["l2"] == [[["x"] * 9] * 9] * 9
    assert data["merged"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a: &a [1, *a]\n", r"recursive YAML alias: the anchor at line 1, column 4 is used inside itself"),
        ("a: &a {b: *a}\n", r"recursive YAML alias: the anchor at line 1, column 4 is used inside itself"),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", r"YAML nested too deeply \(expected at most 64 levels\)"),
        ("a: " + "[" * 80 + "]" * 80 + "\n", r"YAML nested too deeply \(expected at most 64 levels\)"),
    ],
)
def test_recursive_or_deep_yaml_is_a_config_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)
    with pytest.raises(ConfigError, match=expected):
        load_prepare_config(path)


def test_override_values_are_bounded_too() -> None:
    with pytest.raises(ConfigError, match=r"override 'a=&x \[\*x\]': recursive YAML alias"):
        parse_override("a=&x [*x]")
    assert parse_override("train.epochs=2") == ("train.epochs", 2)


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("data", "batch_size", 10**26, r"'data.batch_size': expected an integer in \[1, 4096\] \(found 10{26}\)"),
        ("data", "pixdim", [1.0, 1.0, 1e-9], r"'data.pixdim.2': expected a number in \[0.01, 100.0\] \(found 1e-09\)"),
        ("train", "epochs", 10**9, r"'train.epochs': expected an integer in \[1, 100000\] \(found 1000000000\)"),
        ("train", "num_workers", 10**6, r"'train.num_workers': expected an integer in \[0, 256\]"),
        ("eval", "sw_batch_size", 10**8, r"'eval.sw_batch_size': expected an integer in \[1, 4096\]"),
        ("eval", "roi_size", [64, 64, 10**7], r"'eval.roi_size.2': expected an integer in \[1, 1024\]"),
        (
            "model",
            "generator_params",
            {"num_downs": 3, "ngf": 10**8},
            r"generator 'unet': parameter 'ngf' got 100000000; expected an integer in \[1, 512\]",
        ),
        (
            "model",
            "discriminator_params",
            {"ndf": 10**8},
            r"discriminator 'patchgan': parameter 'ndf' got 100000000; expected an integer in \[1, 512\]",
        ),
        (
            "model",
            "generator_params",
            {"num_downs": 40},
            r"parameter 'num_downs' got 40; expected an integer in \[2, 12\]",
        ),
    ],
)
def test_absurd_sizes_name_key_value_and_range(
    tmp_path: Path, section: str, key: str, value: object, expected: str
) -> None:
    raw = tiny_config(tmp_path / "d", tmp_path / "o")
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=expected):
        validate_config(raw)


def test_prepare_config_counts_are_bounded() -> None:
    with pytest.raises(ConfigError, match=r"'registration.iterations': expected an integer in \[1, 100000\]"):
        load_prepare_config(None, {"registration.iterations": 10**12})
    with pytest.raises(ConfigError, match=r"'scan_workers': expected an integer in \[1, 1024\] \(found 1000000\)"):
        load_prepare_config(None, {"scan_workers": 10**6})


def test_3d_patch_and_xray_grid_are_bounded(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path / "d", tmp_path / "o")
    raw["data"].update(spatial_dims=3, patch_size=[32, 32, 100000])
    with pytest.raises(ConfigError, match=r"'data.patch_size.2': expected an integer in \[1, 1024\]"):
        validate_config(raw)
    raw["data"].update(task="xray2ct", patch_size=None)
    raw["model"] = {"generator": "x2ct", "generator_params": {"num_downs": 3, "ngf": 4}}
    raw["xray"] = {"size": 100000}
    with pytest.raises(ConfigError, match=r"'xray.size': expected an integer in \[8, 512\]"):
        validate_config(raw)


def test_cli_refuses_a_bomb_and_absurd_ngf_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_cli_errors import assert_one_error_line

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb())
    code, out, err = run_cli(monkeypatch, capsys, "train", str(bomb))
    assert code == 2 and out == ""
    assert_one_error_line(err, "YAML expands to more than 100000 values")

    raw = tiny_config(tmp_path / "d", tmp_path / "o")
    raw["model"]["generator_params"]["ngf"] = 10**8
    config = tmp_path / "ngf.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, out, err = run_cli(monkeypatch, capsys, "train", str(config))
    assert code == 2 and out == "" and "Traceback" not in err
    assert "parameter 'ngf' got 100000000; expected an integer in [1, 512]" in err
