"""Atomic file writing: write a hidden temporary file in the target folder, then ``os.replace``.

``os.replace`` is atomic on POSIX and Windows when source and target are on the same file system,
which a sibling temporary file guarantees. A reader therefore sees either the old file or the
complete new one, never a partial file; on any failure the temporary file is removed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_bytes_atomic"]


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


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
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp{suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as e:  # full disk, no permission...: name the destination, not the hidden temporary
        tmp.unlink(missing_ok=True)
        if e.filename not in (None, str(tmp)):
            raise
        raise OSError(e.errno, f"cannot write ({e.strerror or e})", str(path)) from e
    except BaseException:  # also on KeyboardInterrupt: never leave a partial temporary file
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Args:
        path: Destination file.
        data: Complete file content.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
