"""Exclusive folder locks: one writer at a time per training output folder, dataset or MLflow store.

:func:`folder_lock` (and :func:`file_lock` for a lock beside a file) holds an advisory
``flock(LOCK_EX)`` on a lock file (``.medxlate.lock`` in the folder) for as long as the block runs.
A second process asking for the same lock fails at once with :class:`~medxlate.errors.FolderLockedError`
naming the folder and the holder (pid, host, command, start time: written into the lock file).
``wait=True`` blocks instead (used to serialise short critical sections such as the creation of an
MLflow SQLite store).

Stale locks cannot happen: the kernel drops a ``flock`` when its process dies (killed, crashed,
power loss), so a lock file left behind by a dead process is simply acquired by the next one. The
lock file is removed on release; a waiter that locked a file just unlinked by its previous holder
notices (the path no longer names its inode) and retries, so two holders can never coexist.
On Windows ``msvcrt.locking`` plays the role of ``flock``. Network file systems without lock
support raise a clear error rather than silently running unlocked.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from medxlate.errors import FolderLockedError, OutputError

__all__ = ["LOCK_NAME", "file_lock", "folder_lock"]

LOCK_NAME = ".medxlate.lock"
_HOLDER_BYTES = 4096


def _try_lock(fd: int, wait: bool) -> bool:
    """Take the exclusive lock on ``fd``; ``False`` if another process holds it (and not ``wait``)."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(0.05)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _holder(fd: int) -> str:
    """What the holder wrote into the lock file, as a readable phrase."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, _HOLDER_BYTES)
        info = json.loads(raw.decode("utf-8")) if raw else {}
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process (it has not written its details yet)"
    return (
        f"process {info.get('pid')} on {info.get('host', '?')} ({info.get('purpose', '?')}, "
        f"started {info.get('started', '?')})"
    )


def _open_locked(path: Path, wait: bool) -> tuple[int, bool]:
    """Open ``path`` and try to lock it: (fd, locked). Retries when the file was unlinked by its
    previous holder between our ``open`` and our lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _try_lock(fd, wait)
        except OSError as e:
            os.close(fd)
            raise OutputError(
                f"cannot lock {path}: {e.strerror or e}; expected a local file system that supports file locks"
            ) from e
        if not locked:
            return fd, False
        try:
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        mine = os.fstat(fd)
        if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            return fd, True
        os.close(fd)


@contextmanager
def file_lock(
    path: str | os.PathLike[str], purpose: str, *, wait: bool = False, what: str | None = None
) -> Iterator[Path]:
    """Hold an exclusive lock on the lock file ``path`` for the duration of the block.

    Args:
        path: The lock file (created if missing, removed on release).
        purpose: What the holder does (``"medxlate train"``); shown to anyone who finds it locked.
        wait: Block until the lock is free instead of failing.
        what: How messages name the locked thing (default: the lock file's folder).

    Yields:
        The lock file path.

    Raises:
        FolderLockedError: ``wait`` is false and another process holds the lock.
        OutputError: the file system does not support locks.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, locked = _open_locked(path, wait)
    if not locked:
        holder = _holder(fd)
        os.close(fd)
        raise FolderLockedError(
            f"{what or path.parent} is in use by {holder}; expected no other medxlate process writing there "
            f"(wait for it to finish, or choose another folder; lock file {path})"
        )
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "purpose": purpose,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[:4],
    }
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode("utf-8"))
    try:
        yield path
    finally:
        with suppress(OSError):
            path.unlink()  # while still locked: a waiter that opened it will notice and retry
        os.close(fd)


@contextmanager
def folder_lock(folder: str | os.PathLike[str], purpose: str, *, wait: bool = False) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (its ``.medxlate.lock``), creating the folder if needed.

    Args:
        folder: Output folder or dataset folder.
        purpose: What the holder does; shown to a second process that finds the folder locked.
        wait: Block until free instead of failing.

    A folder created here and still empty on release is removed again.

    Yields:
        The lock file path.

    Raises:
        FolderLockedError: another process holds the folder (and not ``wait``).
    """
    folder = Path(folder)
    created = not folder.exists()
    try:
        with file_lock(folder / LOCK_NAME, purpose, wait=wait, what=f"folder {folder}") as path:
            yield path
    finally:
        if created:  # a run that failed before writing anything leaves no empty folder behind
            with suppress(OSError):
                folder.rmdir()
