"""Runtime: single-process defaults, compile availability, speed flags, the CLI's stop exit code."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import ConfigError, TrainingInterrupted
from medxlate.training import fit
from medxlate.training.runtime import Runtime, check_compile_available, prepare_module, start_runtime, unwrap
from tests.conftest import tiny_config


def test_single_process_without_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    runtime = start_runtime("cpu", batch_size=3)
    assert runtime == Runtime(device=torch.device("cpu"))
    assert runtime.is_main and not runtime.distributed and runtime.any_flag(True) and not runtime.any_flag(False)


def test_compile_without_a_compiler_fails_before_any_work(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ConfigError, match=r"train\.compile: torch\.compile on CPU needs a C\+\+ compiler"):
        check_compile_available(torch.device("cpu"))
    cfg = tiny_config(paired_folder, tmp_path / "run", compile=True)  # the dataset is not even read
    with pytest.raises(ConfigError, match=r"train\.compile"):
        fit(validate_config(cfg))
    assert not (tmp_path / "run").exists()


def test_channels_last_training_matches_the_default_layout(paired_folder: Path, tmp_path: Path) -> None:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    results = []
    for name, flag in (("plain", False), ("channels_last", True)):
        cfg = tiny_config(tmp_path / "dataset", tmp_path / name, epochs=1, decay_epochs=0, max_steps_per_epoch=2)
        cfg["train"]["channels_last"] = flag
        results.append(torch.load(fit(validate_config(cfg)).checkpoint, weights_only=True)["generator"])
    for key, tensor in results[0].items():
        torch.testing.assert_close(results[1][key], tensor, rtol=1e-4, atol=1e-5)


def test_prepare_module_without_ddp_keeps_the_network() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3))
    trained, plain = prepare_module(net, Runtime(device=torch.device("cpu")), channels_last=True, compile_module=False)
    assert trained is plain and unwrap(trained) is plain
    assert plain[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_cli_exit_code_after_a_stop_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import sys

    import yaml

    from medxlate import api, cli

    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tmp_path, tmp_path / "run")))
    seen = {}

    def stopped(cfg: object, tracker: object = None) -> None:
        seen["resume"] = cfg.train.resume  # type: ignore[attr-defined]
        raise TrainingInterrupted(signal.SIGTERM, Path("out/last.pt"))

    monkeypatch.setattr(api, "train", stopped)
    monkeypatch.setattr(sys, "argv", ["medxlate", "train", str(config), "--resume"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 128 + signal.SIGTERM and seen["resume"] == "latest"
    assert "stopped by SIGTERM; checkpoint out/last.pt; continue with --resume" in capsys.readouterr().err
