"""Run identity: distinct default names, the git commit (never failing without git)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from medxlate.checkpoint import inference_checkpoint
from medxlate.errors import CheckpointError
from medxlate.tracking.run_info import default_run_name, git_commit
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
