"""Case folders on disk: input fingerprints, opaque ids, atomic writes, skipping unchanged cases.

Each case folder ``cases/<id>/`` holds the NIfTI files and ``case.json``::

    {"id": "case_000", "fingerprint": "<sha256>", "input_key": "<sha256>",
     "files": {"source": "source.nii.gz", ...}, "registration": {...}}

* ``input_key`` is a SHA-256 over the *content* of the case's input files (never their names or
  any identifier); ``fingerprint`` adds the prepare settings that shape the output. A case whose
  folder holds the same fingerprint is skipped on a rerun (files and mtimes untouched).
* Ids are reused for inputs already prepared in ``out_dir`` (matched by ``input_key``); a new
  input gets ``case_<position>`` unless another input keeps that id, else the next unused number.
  On a fresh folder ids therefore follow input order (manifest order, or the content-hash order of
  DICOM pairs, which reveals nothing about patients); adding patients never renumbers old cases.
  An id whose input has gone may be given to a new input.
* A case is written to a hidden temporary folder beside the others and renamed into place, so an
  interrupted run leaves either the old case or the new one, never half of one (leftover
  temporary folders of a killed process are removed by the next run).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medxlate.io.names import CASE_ID, ROLE, require_name
from medxlate.io.provenance import hash_files  # one content hash for inputs, re-exported here

logger = logging.getLogger(__name__)

__all__ = [
    "CASE_FILE",
    "StoredCase",
    "assign_ids",
    "case_fingerprint",
    "clean_temporaries",
    "existing_cases",
    "hash_files",
    "remove_stale",
    "unchanged",
    "write_case",
]

CASE_FILE = "case.json"
FORMAT_VERSION = 1  # bump when prepare writes different files for the same input and settings
_TMP_MARK = ".tmp-"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredCase:
    """What ``case.json`` of a prepared case says.

    Attributes:
        id: Case id (folder name).
        fingerprint: Input content + settings hash.
        input_key: Input content hash.
        files: Role -> file name inside the case folder.
        record: Extra facts (e.g. ``registration``) copied into dataset.json.
    """

    id: str
    fingerprint: str
    input_key: str
    files: dict[str, str]
    record: dict[str, Any] = field(default_factory=dict)


def case_fingerprint(input_key: str, settings: Mapping[str, Any]) -> str:
    """The fingerprint of a case: its input content and the settings that shape the output."""
    payload = json.dumps({"input": input_key, "settings": settings, "version": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _read_case(folder: Path) -> StoredCase | None:
    try:
        data = json.loads((folder / CASE_FILE).read_text(encoding="utf-8"))
        return StoredCase(
            id=folder.name,
            fingerprint=str(data["fingerprint"]),
            input_key=str(data["input_key"]),
            files={str(k): str(v) for k, v in data["files"].items()},
            record=dict(data.get("record", {})),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def existing_cases(cases_dir: Path) -> dict[str, StoredCase]:
    """Prepared cases found in ``cases_dir`` (folders with a readable ``case.json``), by id."""
    if not cases_dir.is_dir():
        return {}
    found = (_read_case(p) for p in sorted(cases_dir.iterdir()) if p.is_dir() and not p.name.startswith("."))
    return {case.id: case for case in found if case is not None}


def assign_ids(keys: Sequence[str], existing: Mapping[str, StoredCase]) -> list[str]:
    """Opaque ids for inputs with content ``keys`` (in input order), reusing ids of prepared inputs.

    Args:
        keys: Input keys in input order (duplicates are told apart by occurrence).
        existing: Cases already in the dataset folder, by id.

    Returns:
        One id per key, ``case_000``-style, all distinct.
    """
    by_key = {case.input_key: case_id for case_id, case in existing.items()}
    seen: dict[str, int] = {}
    unique = []
    for key in keys:
        seen[key] = seen.get(key, 0) + 1
        unique.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    width = max(3, len(str(len(keys) - 1)))
    used = {by_key[k] for k in unique if k in by_key}
    ids: list[str] = []
    counter = 0
    for position, key in enumerate(unique):
        if key in by_key:
            ids.append(by_key[key])
            continue
        candidate = f"case_{position:0{width}d}"
        while candidate in used:
            candidate = f"case_{len(keys) + counter:0{width}d}"
            counter += 1
        used.add(candidate)
        ids.append(candidate)
    return ids


def unchanged(cases_dir: Path, case_id: str, fingerprint: str) -> StoredCase | None:
    """The stored case if ``cases/<id>`` holds ``fingerprint`` and all its files, else ``None``."""
    stored = _read_case(cases_dir / case_id)
    if stored is None or stored.fingerprint != fingerprint:
        return None
    if not all((cases_dir / case_id / name).is_file() for name in stored.files.values()):
        return None
    return stored


def write_case(
    cases_dir: Path,
    case: StoredCase,
    writers: Mapping[str, Callable[[Path], None]],
) -> StoredCase:
    """Write a case atomically: temporary folder, then rename over the old case folder.

    Args:
        cases_dir: The dataset's ``cases`` folder.
        case: Id, fingerprint, input key and record (``files`` is filled in here).
        writers: Role -> function writing that role's file to the given path (``<role>.nii.gz``).

    Returns:
        The stored case with its ``files``.

    Raises:
        InputDataError: A case id or role that is not a plain name (it would place a file elsewhere).
    """
    require_name(case.id, CASE_ID, f"{cases_dir}: case id")
    for role in writers:
        require_name(role, ROLE, f"{cases_dir}: case '{case.id}' role")
    cases_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{case.id}{_TMP_MARK}", dir=cases_dir))
    final = cases_dir / case.id
    retired = cases_dir / f".{case.id}{_TMP_MARK}old"
    try:
        files = {}
        for role, write in writers.items():
            write(staging / f"{role}.nii.gz")
            files[role] = f"{role}.nii.gz"
        stored = StoredCase(case.id, case.fingerprint, case.input_key, files, dict(case.record))
        content = {
            "id": stored.id,
            "fingerprint": stored.fingerprint,
            "input_key": stored.input_key,
            "files": stored.files,
            "record": stored.record,
        }
        (staging / CASE_FILE).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(retired, ignore_errors=True)
            final.rename(retired)
        staging.rename(final)
    except BaseException:  # also KeyboardInterrupt: never leave a half case behind
        shutil.rmtree(staging, ignore_errors=True)
        if retired.exists() and not final.exists():
            retired.rename(final)  # put the previous case back
        raise
    shutil.rmtree(retired, ignore_errors=True)
    return stored


def clean_temporaries(cases_dir: Path) -> None:
    """Remove temporary case folders a killed run may have left (``.<id>.tmp-*``)."""
    if not cases_dir.is_dir():
        return
    for path in cases_dir.iterdir():
        if path.name.startswith(".") and _TMP_MARK in path.name and path.is_dir():
            original = cases_dir / path.name[1:].split(_TMP_MARK)[0]
            if path.name.endswith(f"{_TMP_MARK}old") and not original.exists():
                path.rename(original)  # killed between the two renames: the old case is still valid
            else:
                shutil.rmtree(path, ignore_errors=True)


def remove_stale(cases_dir: Path, keep: Iterable[str]) -> list[str]:
    """Delete case folders not listed in the dataset any more (after dataset.json was written).

    Args:
        cases_dir: The dataset's ``cases`` folder.
        keep: Ids listed in dataset.json.

    Returns:
        The removed ids.
    """
    keep = set(keep)
    if not cases_dir.is_dir():
        return []
    removed = []
    for folder in sorted(cases_dir.iterdir()):
        if folder.is_dir() and not folder.name.startswith(".") and folder.name not in keep:
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed
