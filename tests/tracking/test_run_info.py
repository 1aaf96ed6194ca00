"""Run identity: distinct default names, the git commit (never failing without git)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from medxlate.checkpoint import inference_checkpoint
from medxlate.errors import CheckpointError
from medxlate.tracking.run_info import current_user, default_run_name, git_commit, source_name
from medxlate.training.resume import check_compatible

REPO = Path(__file__).resolve().parents[2]


def test_default_run_name_is_config_name_and_time() -> None:
    first, second = default_run_name("ct2mr", now=1_700_000_000), default_run_name("ct2mr", now=1_700_000_001)
    assert re.fullmatch(r"ct2mr-\d{8}-\d{6}", first) and first != second


def test_git_commit_of_the_checkout() -> None:
    if not (REPO / ".git").exists():
        pytest.skip("the tests do not run from a git checkout")
    expected = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert git_commit() == expected.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", git_commit() or "")


def test_git_commit_is_none_outside_git_or_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert git_commit(tmp_path) is None  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable
    assert git_commit() is None


def test_resume_refuses_an_inference_checkpoint(tmp_path: Path) -> None:
    slim = inference_checkpoint({"generator": {}, "discriminator": {}, "optimizer_g": {}, "config": {}})
    assert set(slim) == {"generator", "config", "kind"}
    with pytest.raises(CheckpointError, match=r"model.pt is an inference checkpoint .*needs the full checkpoint"):
        check_compatible(slim, tmp_path / "model.pt", {}, {})


def test_source_is_the_command_and_its_yaml_never_other_paths() -> None:
    patient = "/exports/Doe_John_123/ct"
    assert source_name(["/v/bin/medxlate", "train", "--set", f"data.dataset={patient}", "configs/ct2mr_2d.yaml"]) == (
        "medxlate train configs/ct2mr_2d.yaml"
    )
    module = ["/v/lib/medxlate/__main__.py", "run", "pipelines/demo.yaml"]  # python -m / torchrun -m medxlate
    assert source_name(module) == "medxlate run pipelines/demo.yaml"
    assert source_name(["/v/bin/medxlate", "translate", "model.pt", patient, "out.nii.gz"]) == "medxlate translate"
    assert source_name(["/home/me/analysis.py", patient]) == "analysis.py"
    assert source_name([]) == "python"


def test_user_falls_back_when_the_login_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_login() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr("getpass.getuser", no_login)
    assert current_user() == "unknown"
