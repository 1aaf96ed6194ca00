"""The output guard: no writer may replace one of its own inputs.

Every entry point that writes files (``translate``, ``prepare`` and its id map, ``train``,
``evaluate``) calls :func:`guard_output` with the output it is about to write and the inputs of the
same command *before* anything is written. An output is refused when it

* is the same file as an input: same path, a symlink to it, or a hard link (same device and inode);
* lies inside an input folder (a DICOM series folder, a DICOM export tree), or is a folder that
  contains an input file;
* is an existing file hard-linked to a file inside an input folder.

Paths are compared after ``expanduser`` and ``resolve`` (symlinks followed), and identity of existing
files through ``os.stat`` (``st_dev``, ``st_ino``), so ``./x.nii.gz``, ``link -> x.nii.gz`` and a hard
link of ``x.nii.gz`` are all the same file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from medxlate.errors import OutputError

__all__ = ["guard_output", "guard_outputs"]


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()  # follows symlinks
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _linked_inside(output: Path, folder: Path) -> Path | None:
    """A file below ``folder`` that is a hard link of the existing file ``output``, else ``None``."""
    try:
        stat = output.stat()
    except OSError:
        return None
    if stat.st_nlink < 2 or not output.is_file():  # no other name exists: nothing to search for
        return None
    wanted = (stat.st_dev, stat.st_ino)
    for root, _, files in os.walk(folder):
        for name in files:
            candidate = Path(root) / name
            if _identity(candidate) == wanted:
                return candidate
    return None


def _conflict(output: Path, resolved: Path, source: Path) -> str | None:
    """Why writing ``output`` would damage the input ``source``, or ``None``."""
    source_resolved = source.expanduser().resolve()
    same = _identity(resolved)
    if resolved == source_resolved or (same is not None and same == _identity(source_resolved)):
        return f"it is the input {source} itself"
    if source_resolved.is_dir():
        if source_resolved in resolved.parents:
            return f"it lies inside the input folder {source}"
        linked = _linked_inside(resolved, source_resolved)
        if linked is not None:
            return f"it is a hard link of the input file {linked}"
    if resolved in source_resolved.parents and resolved.is_dir():
        return f"it is a folder holding the input {source}"
    return None


def guard_output(output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None], what: str) -> Path:
    """Refuse an output that would overwrite or land inside one of the command's inputs.

    Args:
        output: The file or folder about to be written.
        inputs: The files and folders the same command reads (``None`` entries are skipped).
        what: How the message names the output (``"output"``, ``"--id-map"``, ``"train.output_dir"``).

    Returns:
        ``output`` resolved to an absolute path.

    Raises:
        OutputError: naming the output, the input it collides with, and what is expected instead.
    """
    output = Path(output)
    resolved = output.expanduser().resolve()
    for source in inputs:
        if source is None:
            continue
        reason = _conflict(output, resolved, Path(source))
        if reason is not None:
            raise OutputError(
                f"{what} {output}: {reason}; expected a path outside every input "
                "(medxlate never writes over or into its inputs)"
            )
    return resolved


def guard_outputs(
    outputs: Iterable[tuple[str | os.PathLike[str] | None, str]], inputs: Iterable[str | os.PathLike[str] | None]
) -> None:
    """:func:`guard_output` for several ``(output, what)`` pairs against the same inputs.

    Args:
        outputs: ``(path, how the message names it)`` pairs; ``None`` paths are skipped.
        inputs: The files and folders the command reads.

    Raises:
        OutputError: for the first output that collides with an input.
    """
    sources = [s for s in inputs if s is not None]
    for path, what in outputs:
        if path is not None:
            guard_output(path, sources, what)
