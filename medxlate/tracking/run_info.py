"""What identifies a tracked run: a distinct name and provenance tags (no mlflow import here)."""

from __future__ import annotations

import getpass
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import medxlate


def default_run_name(config_name: str, now: float | None = None) -> str:
    """``<config name>-<YYYYmmdd-HHMMSS>`` (local time), so runs of one config differ in the MLflow UI.

    Args:
        config_name: The experiment config's ``name``.
        now: Seconds since the epoch; ``None`` for the current time.
    """
    return f"{config_name}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"


def git_commit(package_dir: Path | None = None) -> str | None:
    """The commit checked out where medxlate's code runs from, or ``None``.

    ``None`` when git is not installed, the code is not in a git checkout, or the checkout does not
    track the package (e.g. an installed copy inside some other repository's virtual environment).
    Never raises.

    Args:
        package_dir: The package folder to ask about; defaults to the imported ``medxlate`` package.
    """
    folder = Path(package_dir) if package_dir is not None else Path(medxlate.__file__).resolve().parent
    tracked = _git(folder, "ls-files", "--error-unmatch", "__init__.py")
    return _git(folder, "rev-parse", "HEAD") if tracked is not None else None


def _git(folder: Path, *args: str) -> str | None:
    """stdout of ``git -C folder args`` stripped, or ``None`` on any failure."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def run_tags(task: str, dataset_fingerprint: str | None, world_size: int) -> dict[str, str]:
    """The ``medxlate.*`` tags of a training run (version, task, git commit, dataset fingerprint).

    Args:
        task: ``"<source>-><target>"``, e.g. ``"CT->MR"``.
        dataset_fingerprint: Hash of the dataset's fingerprint (as stored in checkpoints), if any.
        world_size: Number of training processes.
    """
    tags = {"medxlate.version": medxlate.__version__, "medxlate.task": task, "medxlate.world_size": str(world_size)}
    commit = git_commit()
    if commit:
        tags["medxlate.git_commit"] = commit
    if dataset_fingerprint:
        tags["medxlate.dataset_fingerprint"] = dataset_fingerprint
    return tags


def source_name(argv: Sequence[str] | None = None) -> str:
    """What started this process, as the run's Source: ``medxlate <command> <config or pipeline YAML>``.

    Only the subcommand and its YAML file are kept, never other arguments (a dataset or input path may
    name a patient). A Python script or tool other than the ``medxlate`` command (``python -m medxlate``
    and ``torchrun -m medxlate`` included) is named by its file name, as MLflow names it.

    Args:
        argv: The command line; defaults to ``sys.argv``.
    """
    args = list(sys.argv if argv is None else argv)
    program = Path(args[0]) if args and args[0] else Path("python")
    if program.name != "medxlate" and program.parts[-2:] != ("medxlate", "__main__.py"):
        return program.name or "python"
    words = ["medxlate"]
    if len(args) > 1 and not args[1].startswith("-"):
        words.append(args[1])
        files = [a for a in args[2:] if a.endswith((".yaml", ".yml")) and not a.startswith("-") and "=" not in a]
        words += files[:1]
    return " ".join(words)


def current_user() -> str:
    """The login name (``getpass.getuser``), or ``"unknown"`` where there is none (e.g. a container user
    without a passwd entry)."""
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


def run_context_tags(argv: Sequence[str] | None = None) -> dict[str, str]:
    """MLflow's standard tags for a new run (the UI's Source and User columns): ``mlflow.source.name``
    (:func:`source_name`), ``mlflow.source.type`` (``LOCAL``) and ``mlflow.user`` (:func:`current_user`)."""
    return {"mlflow.source.name": source_name(argv), "mlflow.source.type": "LOCAL", "mlflow.user": current_user()}
