"""A model package's files and its SHA-256 manifest (``SHA256SUMS``, the format ``sha256sum -c`` reads).

A package is a folder holding the inference checkpoint (``model.pt``), the machine-readable card
(``model.json``), the human card (``MODEL_CARD.md``) and ``SHA256SUMS``, one ``<sha256>  <name>``
line for every other file. Loading verifies every listed file before anything is unpickled; files
not listed are ignored (nothing reads them), but the two files loading reads must be listed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from medxlate.errors import CheckpointError
from medxlate.io.provenance import sha256_file

__all__ = [
    "CARD_FILE",
    "MANIFEST_FILE",
    "PACKAGE_FORMAT",
    "PACKAGE_VERSION",
    "RECORD_FILE",
    "WEIGHTS_FILE",
    "is_package",
    "read_package",
    "verify_package",
    "write_manifest",
]

PACKAGE_FORMAT = "medxlate-package"
PACKAGE_VERSION = 1
WEIGHTS_FILE = "model.pt"
RECORD_FILE = "model.json"
CARD_FILE = "MODEL_CARD.md"
MANIFEST_FILE = "SHA256SUMS"
_REQUIRED = (WEIGHTS_FILE, RECORD_FILE)
_LINE = re.compile(r"^([0-9a-f]{64}) [ *]([A-Za-z0-9._-]+)$")


def is_package(path: str | Path) -> bool:
    """Whether ``path`` is a folder that presents itself as a model package (it holds ``SHA256SUMS``)."""
    return Path(path).is_dir() and (Path(path) / MANIFEST_FILE).is_file()


def write_manifest(folder: Path) -> Path:
    """Write ``SHA256SUMS`` listing every file of ``folder`` (flat; itself excluded), sorted by name.

    Returns:
        The manifest written.
    """
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_FILE)
    lines = [f"{sha256_file(folder / name)}  {name}\n" for name in names]
    manifest = folder / MANIFEST_FILE
    manifest.write_text("".join(lines), encoding="ascii")
    return manifest


def _read_manifest(folder: Path) -> dict[str, str]:
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        raise CheckpointError(f"{folder}: not a medxlate model package (no {MANIFEST_FILE})")
    entries: dict[str, str] = {}
    try:
        text = manifest.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{manifest}: unreadable manifest ({e})") from e
    for number, line in enumerate(text.splitlines(), start=1):
        match = _LINE.match(line)
        if match is None:
            raise CheckpointError(f"{manifest}: line {number} is not '<sha256>  <file name>': {line[:80]!r}")
        entries[match.group(2)] = match.group(1)
    missing = [name for name in _REQUIRED if name not in entries]
    if missing:
        raise CheckpointError(f"{manifest}: does not list {', '.join(missing)}; expected every file of the package")
    return entries


def verify_package(folder: str | Path) -> dict[str, str]:
    """Check every file ``SHA256SUMS`` lists against its checksum.

    Returns:
        File name -> SHA-256, as listed (and found).

    Raises:
        CheckpointError: naming the file that is missing, or whose content differs from the
            manifest's (tampered with, truncated or damaged), or a malformed manifest.
    """
    folder = Path(folder)
    entries = _read_manifest(folder)
    for name, expected in entries.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the model package (listed in {MANIFEST_FILE})")
        found = sha256_file(path)
        if found != expected:
            raise CheckpointError(
                f"{path}: content differs from the package manifest (sha256 {found[:16]}..., {MANIFEST_FILE} "
                f"lists {expected[:16]}...; {path.stat().st_size} bytes): the file was modified or truncated; "
                "refused"
            )
    return entries


def read_package(folder: str | Path) -> tuple[Path, dict[str, Any]]:
    """Verify a package and return its checkpoint file and its ``model.json`` record.

    Raises:
        CheckpointError: see :func:`verify_package`; or ``model.json`` is not a package record.
    """
    folder = Path(folder)
    verify_package(folder)
    record_path = folder / RECORD_FILE
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{record_path}: not readable JSON ({e})") from e
    if not isinstance(record, dict) or record.get("format") != PACKAGE_FORMAT:
        raise CheckpointError(f"{record_path}: field 'format' is not {PACKAGE_FORMAT!r}")
    if record.get("format_version") != PACKAGE_VERSION:
        raise CheckpointError(
            f"{record_path}: package format_version {record.get('format_version')!r}, this medxlate reads "
            f"{PACKAGE_VERSION}"
        )
    return folder / WEIGHTS_FILE, record
