"""Batch translation: every volume of a folder, DICOM tree or prepared dataset split, one output each.

Inputs (``collect_inputs``):

* a prepared dataset (a folder with ``dataset.json``): the ``source`` of every case of one split;
* a folder of NIfTI / NRRD / MetaImage files (not recursive);
* a DICOM tree: every image series of the model's source modality that ``scan_dicom`` finds.

Each item is translated, written (NIfTI, or a DICOM series folder) with its provenance sidecar, and
listed in ``translation_summary.csv``. A failing item is reported and skipped; the sidecar is
written last, so a rerun skips outputs whose sidecar exists and redoes the rest.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medxlate.errors import InputDataError, MedxlateError
from medxlate.inference.finite import check_finite_input
from medxlate.inference.translator import Translator
from medxlate.io.atomic import atomic_path
from medxlate.io.load import VOLUME_SUFFIXES
from medxlate.io.provenance import sha256_file
from medxlate.progress import track

log = logging.getLogger(__name__)

SUMMARY_NAME = "translation_summary.csv"


@dataclass(frozen=True)
class BatchItem:
    """One volume to translate: a name for its output, how to load it, and what to record."""

    name: str
    input: str  # shown in the summary: a file path, a case id, or a DICOM series folder
    load: Callable[[], Any]
    dicom_source: Any = None  # files of the source series (DICOM trees) for DICOM export
    sha256: Callable[[], str | None] = lambda: None


@dataclass(frozen=True)
class BatchResult:
    """Per-item outcome (``translated``, ``skipped``, ``failed``) and the summary CSV."""

    rows: list[dict[str, str]]
    summary_path: Path

    @property
    def failed(self) -> list[dict[str, str]]:
        """Rows of the items that failed."""
        return [row for row in self.rows if row["status"] == "failed"]


def _volume_stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def is_batch_input(path: Path) -> bool:
    """A folder with ``dataset.json``, volume files or subfolders (a folder of DICOM files only is one series)."""
    if not path.is_dir():
        return False
    return (path / "dataset.json").is_file() or any(
        p.is_dir() or p.name.lower().endswith(VOLUME_SUFFIXES) for p in path.iterdir()
    )


def collect_inputs(root: Path, source_modality: str | None, split: str = "test") -> list[BatchItem]:
    """List what a batch translation of ``root`` would translate (nothing is loaded yet).

    Raises:
        InputDataError: if ``root`` is not a folder or holds nothing translatable.
    """
    from medxlate.io import load_volume

    if not root.is_dir():
        raise InputDataError(f"{root}: batch input must be a folder (NIfTI files, a DICOM tree or a dataset)")
    if (root / "dataset.json").is_file():
        from medxlate.data import read_dataset

        data = read_dataset(root)
        # the model's source modality may be the dataset's target role (MR -> CT on a CT -> MR dataset)
        wanted = (source_modality or data.source_modality).upper()
        role = "target" if wanted == data.target_modality.upper() != data.source_modality.upper() else "source"
        paths = [(case.id, case.files[role]) for case in data.split(split)]
        items = [
            BatchItem(cid, cid, (lambda p=p: load_volume(p)), sha256=(lambda p=p: sha256_file(p))) for cid, p in paths
        ]
        if not items:
            raise InputDataError(f"{root}: dataset split '{split}' has no case to translate")
        return items
    volumes = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES))
    if volumes:
        return [
            BatchItem(_volume_stem(p), str(p), (lambda p=p: load_volume(p)), sha256=(lambda p=p: sha256_file(p)))
            for p in volumes
        ]
    return _dicom_items(root, source_modality)


def _dicom_items(root: Path, source_modality: str | None) -> list[BatchItem]:
    from medxlate.io import load_series, scan_dicom

    scan = scan_dicom(root)
    wanted = [s for s in scan.series if s.is_image and (source_modality is None or s.modality == source_modality)]
    if not wanted:
        found = sorted({s.modality for s in scan.series}) or ["none"]
        raise InputDataError(
            f"{root}: nothing to translate; expected NIfTI/NRRD/MetaImage files, a dataset.json or DICOM image "
            f"series of modality {source_modality or 'any'}, found DICOM series of modality {', '.join(found)}"
        )
    items = []
    for info in wanted:
        # opaque, stable name: never a patient name or UID in a file name
        digest = hashlib.sha256(info.series_uid.encode()).hexdigest()[:12]
        items.append(
            BatchItem(
                f"series_{digest}",
                str(info.files[0].parent),
                (lambda info=info: load_series(info)),
                dicom_source=list(info.files),
            )
        )
    return items


def translate_batch(
    translator: Translator,
    input_root: str | Path,
    output_dir: str | Path,
    *,
    output_format: Literal["nifti", "dicom"] = "nifti",
    split: str = "test",
    progress: bool = False,
) -> BatchResult:
    """Translate every volume found under ``input_root`` into ``output_dir``.

    Outputs are ``<name>_synthetic_<modality>.nii.gz`` (or a folder of that name without the
    suffix for DICOM), each with a provenance sidecar; ``translation_summary.csv`` lists input,
    output, status, seconds and the error message of failed items.

    Args:
        translator: The model.
        input_root: Folder of volumes, DICOM tree, or prepared dataset.
        output_dir: Where outputs and the summary go (created).
        output_format: ``nifti`` or ``dicom``.
        split: Which split of a prepared dataset.
        progress: Show progress on stderr (a bar on a terminal, else a line per volume).

    Returns:
        The per-item rows and the summary path.

    Raises:
        InputDataError: if nothing translatable is found.
        OutputError: if ``output_dir`` is or lies inside ``input_root``.
    """
    from medxlate.io.dicom_export import read_source_series
    from medxlate.io.guard import guard_output
    from medxlate.io.save import sidecar_path

    guard_output(output_dir, [input_root], "output folder")  # never into (or over) the inputs
    items = collect_inputs(Path(input_root), translator.provenance.get("source_modality"), split)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if output_format == "dicom" else ".nii.gz"
    rows = []
    for item in track(items, desc="translate", unit="volume", enabled=progress):
        target = out / f"{item.name}_synthetic_{translator.target_modality.lower()}{suffix}"
        row = {"input": item.input, "output": str(target), "status": "", "seconds": "", "message": ""}
        if sidecar_path(target).is_file():  # written last: the output is complete
            row["status"] = "skipped"
            row["message"] = "output exists (rerun)"
            rows.append(row)
            continue
        start = time.perf_counter()
        try:
            volume = item.load()
            check_finite_input(volume, item.input)
            result = translator(volume)
            source = read_source_series(item.dicom_source) if output_format == "dicom" and item.dicom_source else None
            translator.write(result, target, output_format, dicom_source=source, source_sha256=item.sha256())
            row["status"] = "translated"
        except (MedxlateError, OSError, RuntimeError, ValueError) as e:
            row["status"], row["message"] = "failed", f"{type(e).__name__}: {e}"
            log.warning("translate: %s failed (see %s)", item.name, SUMMARY_NAME)
        row["seconds"] = f"{time.perf_counter() - start:.2f}"
        rows.append(row)
    summary = out / SUMMARY_NAME
    with atomic_path(summary) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["input", "output", "status", "seconds", "message"])
        writer.writeheader()
        writer.writerows(rows)
    return BatchResult(rows=rows, summary_path=summary)
