"""Claiming a training output folder: never replace a finished run, never share a folder.

``fit`` runs inside :func:`claim_output_dir`, which

1. refuses an output folder that is (or lies inside, or holds) the dataset it trains on;
2. locks the folder (:func:`medxlate.io.lock.folder_lock`): a second training into it fails at once,
   naming the first (pid, host, start time);
3. refuses a folder that already holds files unless the config asks to continue that run
   (``train.resume``) or to replace it (``train.overwrite: true``, CLI ``--overwrite``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medxlate.config import ExperimentConfig
from medxlate.errors import OutputError
from medxlate.io.guard import guard_output
from medxlate.io.lock import LOCK_NAME, folder_lock

__all__ = ["check_fresh_output", "claim_output_dir"]

_SHOWN = 5


def check_fresh_output(out_dir: Path, resume: Path | str | None, overwrite: bool) -> None:
    """Refuse a non-empty output folder unless resuming or overwriting.

    Args:
        out_dir: ``train.output_dir``.
        resume: ``train.resume`` (``latest`` or a checkpoint; a non-empty folder is expected then).
        overwrite: ``train.overwrite``.

    Raises:
        OutputError: the folder holds files and neither ``resume`` nor ``overwrite`` is set.
    """
    if resume is not None or overwrite or not out_dir.is_dir():
        return
    found = sorted(p.name for p in out_dir.iterdir() if p.name != LOCK_NAME)
    if not found:
        return
    shown = ", ".join(found[:_SHOWN]) + (f" and {len(found) - _SHOWN} more" if len(found) > _SHOWN else "")
    raise OutputError(
        f"train.output_dir {out_dir}: already holds {shown} (an earlier run); expected an empty or new folder, "
        "train.resume: latest (--resume) to continue that run, or train.overwrite: true (--overwrite) to replace it"
    )


@contextmanager
def claim_output_dir(cfg: ExperimentConfig, *, lock: bool = True) -> Iterator[Path]:
    """Hold the training output folder for the duration of the block (see the module docstring).

    Args:
        cfg: The experiment config (``train.output_dir``, ``train.resume``, ``train.overwrite``,
            ``data.dataset``).
        lock: Take the folder lock (rank 0 of a torchrun job); ``False`` only checks (other ranks).

    Yields:
        The output folder.

    Raises:
        OutputError: the folder collides with the dataset or holds an earlier run.
        FolderLockedError: another process is writing into the folder.
    """
    out_dir = Path(cfg.train.output_dir)
    guard_output(out_dir, [cfg.data.dataset], "train.output_dir")
    if not lock:
        check_fresh_output(out_dir, cfg.train.resume, cfg.train.overwrite)
        yield out_dir
        return
    with folder_lock(out_dir, f"medxlate train {cfg.name}"):
        check_fresh_output(out_dir, cfg.train.resume, cfg.train.overwrite)
        yield out_dir
