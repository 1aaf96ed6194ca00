"""Atomic writing: write a hidden temporary sibling (file or folder), then ``os.replace`` it onto the target.

``os.replace`` is atomic on POSIX and Windows when source and target are on the same file system,
which a sibling temporary guarantees. A reader therefore sees either the old file or the complete
new one, never a partial file; on any failure the temporary is removed. Only a process killed
outright (SIGKILL, power loss) can leave one behind: its name (``.<name>.<16 hex>.tmp<suffix>``)
is recognised by :func:`clean_stale_temporaries`, which a writer holding the folder's lock
(:mod:`medxlate.io.lock`) calls before writing. Errors name the destination, never the temporary.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_dir", "atomic_path", "clean_stale_temporaries", "is_temporary", "write_bytes_atomic"]

logger = logging.getLogger(__name__)

_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp.*$")  # names made by _temporary_sibling


def _temporary_sibling(path: Path, suffix: str = "") -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp{suffix}")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _names_temporary(error: OSError, tmp: Path) -> bool:
    """Whether ``error`` names the temporary (or a file inside it), or no file at all."""
    named = [Path(os.fsdecode(n)) for n in (error.filename, error.filename2) if n is not None]
    return not named or any(p == tmp or tmp in p.parents for p in named)


@contextmanager
def _removed_on_failure(tmp: Path, path: Path, remove: Callable[[], None]) -> Iterator[None]:
    """Run ``remove`` if the block fails; an ``OSError`` about the temporary is re-raised naming ``path``."""
    try:
        yield
    except OSError as e:  # full disk, no permission...: name the destination, not the hidden temporary
        remove()
        if not _names_temporary(e, tmp):
            raise
        raise OSError(e.errno, f"cannot write ({e.strerror or e})", str(path)) from e
    except BaseException:  # also on KeyboardInterrupt: never leave a partial temporary behind
        remove()
        raise


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling path to write; move it onto ``path`` when the block succeeds.

    Parent folders are created. The temporary name is hidden (leading dot), random, and ends with
    ``suffix`` so that writers choosing a format by extension (nibabel: ``.nii.gz`` = gzip) work.
    The file is created by the writer with the usual permissions (umask applies).

    Args:
        path: Final destination.
        suffix: Extension the temporary file must end with, e.g. ``".nii.gz"``.

    Yields:
        The temporary path; the block must create the file there.

    Raises:
        OSError: if writing fails (full disk, no permission...); ``filename`` is ``path``, not the
            temporary file, so messages name the destination the user asked for.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path, suffix)
    with _removed_on_failure(tmp, path, lambda: tmp.unlink(missing_ok=True)):
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)


@contextmanager
def atomic_dir(path: Path, replace_existing: bool = False) -> Iterator[Path]:
    """Yield a new temporary sibling folder to fill; move it onto ``path`` when the block succeeds.

    Args:
        path: Final folder: must not exist, or be empty (it is replaced).
        replace_existing: Also replace a non-empty ``path``: once the new folder is complete, the old
            one is moved aside to a temporary sibling, the new one renamed onto ``path``, then the old
            one deleted (put back if the rename fails). The caller decides whether ``path`` may go.

    Yields:
        The temporary folder (created, empty).

    Raises:
        OSError: if writing fails; ``filename`` is ``path`` when the error concerns the temporary
            folder or a file in it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    with _removed_on_failure(tmp, path, lambda: shutil.rmtree(tmp, ignore_errors=True)):
        tmp.mkdir()
        yield tmp
        if replace_existing and path.is_dir() and any(path.iterdir()):
            _swap_dir(tmp, path)
            return
        if path.exists():
            path.rmdir()  # empty (an error naming it otherwise)
        os.replace(tmp, path)


def _swap_dir(new: Path, path: Path) -> None:
    """Put the complete folder ``new`` in place of the non-empty folder ``path`` and delete the old one."""
    old = _temporary_sibling(path, ".old")
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary of an atomic write (left in a folder only by an interrupted one)."""
    return _TEMPORARY.match(name) is not None


def clean_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries an interrupted atomic write left in ``folder`` (e.g. SIGKILL mid-save).

    Call it only while holding the folder's lock (:func:`medxlate.io.lock.folder_lock`): another
    process's temporary is indistinguishable from a stale one.

    Args:
        folder: The output folder (not searched recursively).

    Returns:
        The files and folders removed.
    """
    if not folder.is_dir():
        return []
    removed = [path for path in sorted(folder.iterdir()) if is_temporary(path.name)]
    for path in removed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        logger.info("removed %s, left by an interrupted write", path.name)
    return removed


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Args:
        path: Destination file.
        data: Complete file content.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
