"""Which id map belongs to which dataset, so ``prepare --id-map`` never replaces a stranger's file.

A dataset folder for which an id map was written carries a random identity,
``.medxlate-dataset.json`` (``{"dataset_uid": "<uuid4 hex>"}``), created with its first id map and
never changed (datasets prepared without an id map stay byte-for-byte reproducible). The uid is random: it says nothing
about patients and may travel with the dataset. Every row of an id map written for the dataset
starts with that uid in its ``dataset_uid`` column. An existing file at the id map path is replaced
only when it is a medxlate id map of this same dataset (every row carries this dataset's uid), or
when the user says ``force``; anything else (another dataset's only patient <-> case table, a DICOM
file, a spreadsheet) is refused, naming what was found.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path

from medxlate.errors import InputDataError, OutputError
from medxlate.io.atomic import write_bytes_atomic

__all__ = ["DATASET_UID_COLUMN", "IDENTITY_FILE", "check_id_map_owner", "dataset_uid"]

IDENTITY_FILE = ".medxlate-dataset.json"
DATASET_UID_COLUMN = "dataset_uid"
_MAX_ID_MAP_BYTES = 64 << 20  # an id map of a million cases is well below this


def dataset_uid(dataset: Path, *, create: bool = True) -> str | None:
    """The random identity of a dataset folder, created on first use.

    Args:
        dataset: Dataset folder.
        create: Create the identity file when missing (``prepare``); else return ``None``.

    Returns:
        The uid (32 hex characters), or ``None`` when there is none and ``create`` is false.

    Raises:
        InputDataError: the identity file exists but is unreadable.
    """
    path = Path(dataset) / IDENTITY_FILE
    if path.is_file():
        try:
            uid = json.loads(path.read_text(encoding="utf-8"))[DATASET_UID_COLUMN]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputDataError(
                f"{path}: unreadable dataset identity ({e}); expected {{'dataset_uid': '<hex>'}}"
            ) from e
        return str(uid)
    if not create:
        return None
    uid = uuid.uuid4().hex
    write_bytes_atomic(path, (json.dumps({DATASET_UID_COLUMN: uid}) + "\n").encode("utf-8"))
    return uid


def _owner_of(path: Path) -> tuple[set[str], str]:
    """(dataset uids found in the file's ``dataset_uid`` column, description of what the file is)."""
    if path.stat().st_size > _MAX_ID_MAP_BYTES:
        return set(), f"a {path.stat().st_size} byte file, not a medxlate id map"
    raw = path.read_bytes()
    try:
        if b"\x00" in raw:
            raise UnicodeDecodeError("utf-8", raw, raw.index(b"\x00"), raw.index(b"\x00") + 1, "NUL byte")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        return set(), "a file that is not a medxlate id map (binary, not a UTF-8 CSV)"
    if not rows or DATASET_UID_COLUMN not in rows[0]:
        return set(), f"a file that is not a medxlate id map (no '{DATASET_UID_COLUMN}' column)"
    owners = {str(row.get(DATASET_UID_COLUMN) or "") for row in rows}
    return owners, f"the id map of dataset {', '.join(sorted(owners))}"


def check_id_map_owner(path: Path, uid: str, force: bool) -> None:
    """Refuse to replace an existing file at ``path`` unless it is this dataset's id map or ``force``.

    Args:
        path: Where the id map will be written.
        uid: This dataset's uid (see :func:`dataset_uid`).
        force: Replace whatever file is there.

    Raises:
        OutputError: a file that is not this dataset's id map is there and ``force`` is false.
    """
    if force or not path.exists():
        return
    owners, found = _owner_of(path)
    if owners == {uid}:
        return
    mine = f"this dataset's ({uid})" if uid else "this dataset's (which has no id map yet)"
    raise OutputError(
        f"id map {path}: already exists and is {found}, not {mine}; expected a new path, "
        "or --force to replace it (an id map may be the only link between cases and patients)"
    )
