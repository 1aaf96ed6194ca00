"""Names and paths read from files are not trusted (DESIGN habit 10).

* A name taken from a manifest, a config, a dataset index or a DICOM header that becomes part of a
  path (a role becomes ``<role>.nii.gz``, a case id a folder) must match an identifier pattern:
  :func:`require_name`. ``../../elsewhere/x`` or ``/tmp/x`` can then never steer a write.
* A path read from a file is relative to the folder that file lives in and must stay inside it
  (``..``, absolute paths and symlinks followed): :func:`outside_reason` says why one does not.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from medxlate.errors import InputDataError, MedxlateError

__all__ = ["CASE_ID", "ROLE", "outside_reason", "require_name"]

#: A role (``source``, ``target``, ``mask``, ``target_noise_free``): a lowercase identifier.
ROLE = (re.compile(r"[a-z][a-z0-9_]{0,63}"), "a lowercase identifier: a-z, then a-z, 0-9 or _ (at most 64)")
#: A case id (``case_000``): letters, digits, ``_``, ``-``, ``.``, starting with a letter or digit.
CASE_ID = (
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"),
    "letters, digits, '_', '-' or '.', starting with a letter or digit (at most 128)",
)


def require_name(
    value: object, rule: tuple[re.Pattern[str], str], where: str, error: type[MedxlateError] = InputDataError
) -> str:
    """Return ``value`` if it is a name matching ``rule``, else raise naming where it came from.

    Args:
        value: The name as read (any type: a JSON key or value).
        rule: ``(pattern, description)``, e.g. :data:`ROLE` or :data:`CASE_ID`.
        where: The file and field the name was read from (``"x/manifest.json: cases[0].files key"``).
        error: The exception class to raise (an input file's: ``InputDataError``; a config's: ``ConfigError``).

    Returns:
        ``value`` (a ``str``).

    Raises:
        MedxlateError: ``error`` when ``value`` is not a string fully matching the pattern.
    """
    pattern, description = rule
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise error(f"{where} is {value!r}; expected {description} (it becomes part of a file name)")
    return value


def outside_reason(path: Path, root: Path) -> str | None:
    """Why ``path`` (absolute, or relative to ``root``) leaves ``root``, or ``None`` if it stays inside.

    Both are compared after resolving symlinks, so a link inside ``root`` pointing elsewhere is
    outside, and ``a/../b`` that stays in the tree is inside.

    Args:
        path: The path as read from a file in ``root`` (relative paths are taken from ``root``).
        root: The folder the path must stay in.

    Returns:
        A short reason (``"an absolute path outside ..."``, ``"a symlink that leads outside ..."``,
        ``"climbs out of ... with '..'"``), or ``None``.
    """
    given = Path(root).expanduser().absolute()
    real = given.resolve()
    joined = given / path
    resolved = joined.resolve()
    if _within(resolved, real):
        return None
    lexical = Path(os.path.normpath(joined))  # ".." applied to the names, no link followed
    if _within(lexical, given) or _within(lexical, real):
        return f"a symlink that leads outside {real} (to {resolved})"
    if Path(path).is_absolute():
        return f"an absolute path outside {real}"
    return f"climbs out of {real} with '..'"


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
