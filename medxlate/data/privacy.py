"""Keeping patient identifiers out of the dataset: redacted messages and the id map.

Identifiers (names, IDs, birth dates, accession numbers, institutions, UIDs, and the folder names of
a hospital export, which often carry them) are held in memory while pairing. Two things may leave
memory with them:

* the *id map*, a CSV linking opaque case ids back to patients, written only where the user points
  and never inside the dataset folder;
* nothing else: messages about a case name it by opaque index and have every known identifier and
  input path replaced by ``<redacted>`` (:class:`Redactor`) before they reach an exception or a log.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from medxlate.errors import InputDataError
from medxlate.io.atomic import write_bytes_atomic

__all__ = ["Redactor", "check_id_map_location", "write_id_map"]

_MIN_TOKEN = 3  # name parts shorter than this are too common to redact usefully
PLACEHOLDER = "<redacted>"


class Redactor:
    """Replace known identifier strings (and their obvious variants) in text.

    Args:
        secrets: Identifier values and paths. Person names are also split on ``^``, spaces and
            commas (DICOM PN components); dates ``YYYYMMDD`` also match as ``YYYY-MM-DD``.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        tokens: set[str] = set()
        for secret in secrets:
            text = str(secret).strip()
            if len(text) < _MIN_TOKEN:
                continue
            tokens.add(text)
            tokens.update(part for part in re.split(r"[\^,\s]+", text) if len(part) >= _MIN_TOKEN)
            if re.fullmatch(r"\d{8}", text):
                tokens.add(f"{text[:4]}-{text[4:6]}-{text[6:]}")
        ordered = sorted(tokens, key=len, reverse=True)  # longest first: paths before their parts
        self._pattern = re.compile("|".join(re.escape(t) for t in ordered), re.IGNORECASE) if ordered else None

    def __call__(self, text: str) -> str:
        """Return ``text`` with every known identifier replaced by ``<redacted>``."""
        return self._pattern.sub(PLACEHOLDER, text) if self._pattern is not None else text

    @classmethod
    def for_inputs(cls, root: Path, paths: Iterable[Path], values: Iterable[str]) -> Redactor:
        """A redactor for identifier ``values`` and the input ``paths`` below ``root``.

        Every file path and every folder path from ``root`` down to it is redacted (absolute and
        relative forms), as are file names; folder names alone are not (they would hit words
        such as "DICOM"), but their full paths are.

        Args:
            root: The scanned folder.
            paths: Input files.
            values: Identifier values (patient fields, UIDs).

        Returns:
            The redactor.
        """
        secrets: set[str] = {str(v) for v in values if v}
        root = Path(root)
        for path in paths:
            secrets.add(path.name)
            try:
                parts = Path(path).relative_to(root).parts
            except ValueError:
                parts = Path(path).parts
                root = Path(parts[0])
                parts = parts[1:]
            for depth in range(1, len(parts) + 1):
                relative = Path(*parts[:depth])
                secrets.update({str(root / relative), str(relative)})
        return cls(secrets)


def check_id_map_location(id_map: Path, out_dir: Path) -> Path:
    """Refuse an id map inside the dataset folder (it would ship patient identifiers with the data).

    Args:
        id_map: Where the user wants the id map.
        out_dir: The dataset folder.

    Returns:
        ``id_map`` resolved to an absolute path.

    Raises:
        InputDataError: ``id_map`` lies inside ``out_dir`` or is a folder.
    """
    resolved, dataset = Path(id_map).expanduser().resolve(), Path(out_dir).expanduser().resolve()
    if resolved == dataset or dataset in resolved.parents:
        raise InputDataError(
            f"id_map {id_map}: lies inside the dataset folder {out_dir}; expected a path outside it "
            "(the id map links cases to patients and must never travel with the dataset)"
        )
    if resolved.is_dir():
        raise InputDataError(f"id_map {id_map}: is a folder; expected a CSV file path")
    return resolved


def write_id_map(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """Write the id map CSV atomically (columns: the union of the rows' keys, in first-seen order).

    Args:
        path: Destination (already checked with :func:`check_id_map_location`).
        rows: One mapping per case or reported patient.

    Returns:
        ``path``.
    """
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))
    return path
