"""Claiming a training output folder: never replace a finished run, never share a folder.

``fit`` runs inside :func:`claim_output_dir`, which

1. refuses an output folder that is (or lies inside, or holds) the dataset it trains on;
2. locks the folder (:func:`medxlate.io.lock.folder_lock`): a second training into it fails at once,
   naming the first (pid, host, start time);
3. refuses a folder that already holds files unless the config asks to continue that run
   (``train.resume``) or to replace it (``train.overwrite: true``, CLI ``--overwrite``);
4. refuses ``train.resume: latest`` (``--resume``) when there is no ``last.pt`` to continue from but
   the folder holds a run's outputs (``model.pt``...): starting afresh would replace them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medxlate.config import ExperimentConfig
from medxlate.errors import OutputError
from medxlate.io.atomic import is_temporary
from medxlate.io.guard import guard_output
from medxlate.io.lock import LOCK_NAME, folder_lock
from medxlate.training.resume import CHECKPOINT_NAME

__all__ = ["check_fresh_output", "claim_output_dir"]

_SHOWN = 5
_CACHE_NAME = "data_cache"  # the default data.cache_dir, inside the output folder


def check_fresh_output(
    out_dir: Path, resume: Path | str | None, overwrite: bool, cache_dir: Path | None = None
) -> None:
    """Refuse a non-empty output folder unless resuming or overwriting; refuse ``--resume`` over a run's outputs.

    Args:
        out_dir: ``train.output_dir``.
        resume: ``train.resume`` (``latest`` or a checkpoint; a non-empty folder is expected then).
        overwrite: ``train.overwrite``.
        cache_dir: ``data.cache_dir`` (``None``: ``out_dir/data_cache``), which a run fills before its
            first checkpoint.

    Raises:
        OutputError: the folder holds files and neither ``resume`` nor ``overwrite`` is set; or
            ``resume`` is ``latest``, there is no ``last.pt`` and the folder holds what a run leaves
            (``model.pt``, ``config.yaml``...), which a fresh start would replace.
    """
    if overwrite or not out_dir.is_dir():
        return
    if resume is None:
        found = sorted(p.name for p in out_dir.iterdir() if p.name != LOCK_NAME)
        if found:
            raise OutputError(
                f"train.output_dir {out_dir}: already holds {_listed(found)} (an earlier run); expected an empty or "
                "new folder, train.resume: latest (--resume) to continue that run, or train.overwrite: true "
                "(--overwrite) to replace it"
            )
    elif str(resume) == "latest" and not (out_dir / CHECKPOINT_NAME).is_file():
        # A run stopped before its first checkpoint leaves only its cache (and temporaries): starting afresh is
        # what --resume promises then, so a requeued job can always pass it. Anything else is a run's output.
        cache = (out_dir / _CACHE_NAME if cache_dir is None else Path(cache_dir)).resolve()
        found = sorted(
            p.name
            for p in out_dir.iterdir()
            if p.name != LOCK_NAME and not is_temporary(p.name) and p.resolve() != cache
        )
        if found:
            raise OutputError(
                f"train.output_dir {out_dir}: --resume (train.resume: latest) found no {CHECKPOINT_NAME} to continue "
                f"from, but the folder holds {_listed(found)} (an earlier run), which a fresh start would replace; "
                f"expected {CHECKPOINT_NAME} there, --resume-from CHECKPOINT to continue from another checkpoint, or "
                "--overwrite without --resume (train.overwrite: true) to start again and replace that run"
            )


def _listed(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


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
        check_fresh_output(out_dir, cfg.train.resume, cfg.train.overwrite, cfg.data.cache_dir)
        yield out_dir
        return
    with folder_lock(out_dir, f"medxlate train {cfg.name}"):
        check_fresh_output(out_dir, cfg.train.resume, cfg.train.overwrite, cfg.data.cache_dir)
        yield out_dir
