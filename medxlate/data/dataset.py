"""The prepared dataset layout: ``dataset.json`` plus ``cases/<opaque id>/{source,target,mask}.nii.gz``.

``dataset.json`` (format 1)::

    {"format": "medxlate-dataset", "version": 1, "name": "...",
     "source_modality": "CT", "target_modality": "MR",
     "cases": [{"id": "case_000", "split": "train",
                "files": {"source": "cases/case_000/source.nii.gz",
                          "target": "cases/case_000/target.nii.gz",
                          "mask": "cases/case_000/mask.nii.gz"}}]}

File paths are relative to the dataset folder. ``files`` may hold extra roles (e.g.
``target_noise_free`` for simulated data). ``prepare`` adds, per case, ``fingerprint`` (input
content + settings hash) and ``registration`` (the similarity metric after alignment), and at top
level ``prepare`` (its settings); readers ignore keys they do not know. ``fingerprint.json`` beside
it holds intensity and spacing statistics (see :mod:`medxlate.data.fingerprint`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medxlate.errors import InputDataError
from medxlate.io.names import CASE_ID

DATASET_FILE = "dataset.json"
REQUIRED_ROLES = ("source", "target")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Case:
    """One paired case of a prepared dataset (absolute paths)."""

    id: str
    split: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def source(self) -> Path:
        """Source image (e.g. CT)."""
        return self.files["source"]

    @property
    def target(self) -> Path:
        """Target image (e.g. MR)."""
        return self.files["target"]

    @property
    def mask(self) -> Path | None:
        """Body mask, if the dataset has one."""
        return self.files.get("mask")


@dataclass(frozen=True)
class Dataset:
    """A prepared dataset: metadata and cases."""

    root: Path
    name: str
    source_modality: str
    target_modality: str
    cases: tuple[Case, ...]

    def split(self, name: str) -> list[Case]:
        """Cases of one split (``train``, ``val`` or ``test``)."""
        return [case for case in self.cases if case.split == name]


def read_dataset(root: str | Path) -> Dataset:
    """Read and check ``dataset.json`` of a prepared dataset.

    Args:
        root: Dataset folder (or the ``dataset.json`` file itself).

    Returns:
        The dataset with absolute file paths.

    Raises:
        InputDataError: if the file is missing or malformed, or a listed file does not exist;
            all problems are listed at once.
    """
    root = Path(root)
    index = root if root.name == DATASET_FILE else root / DATASET_FILE
    if not index.is_file():
        raise InputDataError(f"{index}: dataset index not found (expected a folder written by 'medxlate prepare')")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputDataError(f"{index}: not valid JSON: {e}") from e
    problems: list[str] = []
    cases = tuple(_parse_case(index.parent, entry, n, problems) for n, entry in enumerate(data.get("cases", [])))
    if not cases:
        problems.append("'cases' is empty or missing (expected a list of cases)")
    if problems:
        raise InputDataError(f"{index}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return Dataset(
        root=index.parent,
        name=str(data.get("name", index.parent.name)),
        source_modality=str(data.get("source_modality", "CT")),
        target_modality=str(data.get("target_modality", "MR")),
        cases=cases,
    )


def _parse_case(root: Path, entry: Any, position: int, problems: list[str]) -> Case:
    if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
        problems.append(f"cases[{position}]: expected an object with 'id', 'split' and 'files'")
        return Case(id=f"#{position}", split="invalid")
    case_id = str(entry.get("id", f"#{position}"))
    pattern, expected = CASE_ID
    if not pattern.fullmatch(case_id):  # ids name output files (batch translation): never a path
        problems.append(f"cases[{position}]: id is {case_id!r}, expected {expected}")
    split = entry.get("split")
    if split not in SPLITS:
        problems.append(f"case '{case_id}': split is {split!r}, expected one of {', '.join(SPLITS)}")
    files = {role: root / rel for role, rel in entry["files"].items()}
    for role in REQUIRED_ROLES:
        if role not in files:
            problems.append(f"case '{case_id}': no '{role}' file listed")
    for role, path in files.items():
        if not path.is_file():
            problems.append(f"case '{case_id}': {role} file {path} does not exist")
    return Case(id=case_id, split=str(split), files=files)


def write_dataset_index(root: Path, name: str, cases: list[dict[str, Any]], **meta: Any) -> Path:
    """Write ``dataset.json`` atomically (temporary file, fsync, rename).

    An index whose content is unchanged is not rewritten (its bytes and mtime stay as they are).

    Args:
        root: Dataset folder.
        name: Dataset name.
        cases: Case entries (``id``, ``split``, ``files`` and any extra facts).
        **meta: Extra top-level keys (``source_modality``...), written before ``cases``.

    Returns:
        Path of ``dataset.json``.
    """
    from medxlate.io.atomic import write_bytes_atomic

    content = {"format": "medxlate-dataset", "version": 1, "name": name, **meta, "cases": cases}
    data = (json.dumps(content, indent=2) + "\n").encode("utf-8")
    target = root / DATASET_FILE
    if not (target.is_file() and target.read_bytes() == data):
        write_bytes_atomic(target, data)
    return target
