"""Batch translation: every volume of a folder, DICOM tree or prepared dataset split, one output each.

Inputs (``collect_inputs``):

* a prepared dataset (a folder with ``dataset.json``): the ``source`` of every case of one split;
* a folder of NIfTI / NRRD / MetaImage files (not recursive);
* a DICOM tree: every image series of the model's source modality that ``scan_dicom`` finds.

Each item gets its own output name (files whose names differ only by extension, ``case.nii.gz`` and
``case.nrrd``, keep it: ``case_nii_gz``, ``case_nrrd``), is translated, written (NIfTI, or a DICOM
series folder) with its provenance sidecar, and listed in ``translation_summary.csv``. A failing
item is reported and skipped. The sidecar is written last and records the input's SHA-256, so a
rerun skips an output only when its sidecar names the same input; an output made from another
input is reported as failed, never skipped nor replaced. The output folder is locked for the run,
and temporaries a killed run left there are removed first. Without ``identifiers`` the summary
names inputs without the paths of the input folder (hospital exports name folders after patients).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medxlate.errors import InputDataError, MedxlateError
from medxlate.inference.finite import check_finite_input
from medxlate.inference.translator import Translator
from medxlate.io.atomic import atomic_path, clean_stale_temporaries
from medxlate.io.load import VOLUME_SUFFIXES
from medxlate.io.provenance import HASH_FILES_METHOD, hash_files, sha256_file
from medxlate.progress import track

log = logging.getLogger(__name__)

SUMMARY_NAME = "translation_summary.csv"


@dataclass(frozen=True)
class BatchItem:
    """One volume to translate: a name for its output, how to load it, and what to record.

    ``input`` may name the patient (a path in a hospital export); ``label`` never does, and
    ``secrets`` lists what must be redacted from messages about the item.
    """

    name: str
    input: str  # a file path, a case id, or a DICOM series folder
    load: Callable[[], Any]
    dicom_source: Any = None  # files of the source series (DICOM trees) for DICOM export
    sha256: Callable[[], str | None] = lambda: None
    sha256_method: str | None = None  # how ``sha256`` hashes several files (recorded in the sidecar)
    label: str = ""  # shown instead of ``input`` without identifiers
    secrets: tuple[str, ...] = ()


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


def volume_names(paths: list[Path]) -> list[str]:
    """One output name per file, unique even where file systems ignore case; the same for the same files.

    The name is the file's stem; files sharing a stem keep their extension (``case.nii.gz`` ->
    ``case_nii_gz``, ``case.nrrd`` -> ``case_nrrd``); names still shared get 8 hex digits of the
    SHA-256 of the file name.

    Args:
        paths: The input files (distinct names).

    Returns:
        The names, in the order of ``paths``.
    """
    stems = [_volume_stem(p) for p in paths]
    shared = Counter(stem.casefold() for stem in stems)
    names = [
        stem if shared[stem.casefold()] == 1 else f"{stem}_{p.name[len(stem) + 1 :].replace('.', '_')}"
        for stem, p in zip(stems, paths, strict=True)
    ]
    shared = Counter(name.casefold() for name in names)
    return [
        name if shared[name.casefold()] == 1 else f"{name}_{hashlib.sha256(p.name.encode()).hexdigest()[:8]}"
        for name, p in zip(names, paths, strict=True)
    ]


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
            BatchItem(cid, cid, (lambda p=p: load_volume(p)), sha256=(lambda p=p: sha256_file(p)), label=cid)
            for cid, p in paths
        ]
        if not items:
            raise InputDataError(f"{root}: dataset split '{split}' has no case to translate")
        return items
    volumes = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower().endswith(VOLUME_SUFFIXES))
    if volumes:
        return [
            # the file name is already part of the output name; the folder's path is left out
            BatchItem(name, str(p), (lambda p=p: load_volume(p)), sha256=(lambda p=p: sha256_file(p)), label=p.name)
            for name, p in zip(volume_names(volumes), volumes, strict=True)
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
        secrets = (*info.identifiers.values(), info.series_uid, info.study_uid, info.frame_of_reference_uid)
        items.append(
            BatchItem(
                f"series_{digest}",
                str(info.files[0].parent),
                (lambda info=info: load_series(info)),
                dicom_source=list(info.files),
                sha256=(lambda info=info: hash_files(info.files)),
                sha256_method=HASH_FILES_METHOD,
                label=f"{info.modality} series '{info.description or 'no description'}' ({info.n_instances} images)",
                secrets=tuple(str(s) for s in secrets if s),
            )
        )
    return items


def _redactor(root: Path, items: list[BatchItem]) -> Callable[[str], str]:
    """Redact every DICOM file and folder below ``root``, the series' identifiers, and ``root`` itself.

    ``root`` is replaced where it starts a path (given, absolute or resolved form), as a whole:
    not split into words like a person's name, so a folder called "My Data" leaves "Data" alone.
    """
    from medxlate.data.privacy import PLACEHOLDER, Redactor

    files = [Path(f) for item in items for f in item.dicom_source or ()]
    redact = Redactor.for_inputs(root, files, [s for item in items for s in item.secrets])
    forms = sorted({str(root), str(root.absolute()), str(root.resolve())} - {"."}, key=len, reverse=True)
    folder = re.compile(r"(?<![^\s'\"(\[=:])(?:" + "|".join(map(re.escape, forms)) + r")(?=[/\\])")
    return lambda text: folder.sub(PLACEHOLDER, redact(text))


def _previous_output(target: Path, source_sha256: str | None) -> tuple[str, str] | None:
    """``(status, message)`` if ``target`` holds a finished output (its sidecar exists), else ``None``."""
    from medxlate.io.save import sidecar_path

    sidecar = sidecar_path(target)
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return "failed", f"{sidecar}: cannot read the existing output's provenance ({e}); expected its JSON sidecar"
    recorded = record.get("source_sha256") if isinstance(record, dict) else None
    if recorded is not None and recorded == source_sha256:
        return "skipped", "output exists for this input (rerun)"
    if recorded is None:  # e.g. a DICOM series written before batch recorded series checksums
        return "failed", (
            f"{target.name} exists but {sidecar.name} records no source_sha256, so it cannot be matched to this "
            "input; expected no output or one made from this input: remove it or choose another output folder"
        )
    return "failed", (
        f"{target.name} exists and was made from another input (source_sha256 {str(recorded)[:12]} in "
        f"{sidecar.name}, this input {str(source_sha256)[:12]}); expected no output or this input's: "
        "remove it or choose another output folder"
    )


def _translate_item(
    translator: Translator, item: BatchItem, target: Path, output_format: Literal["nifti", "dicom"]
) -> tuple[str, str]:
    """Translate and write one item unless its output exists; ``(status, message)``."""
    from medxlate.io.dicom_export import read_source_series

    try:
        source_sha256 = item.sha256()
        previous = _previous_output(target, source_sha256)
        if previous is not None:
            return previous
        volume = item.load()
        check_finite_input(volume, item.input)
        result = translator(volume)
        source = read_source_series(item.dicom_source) if output_format == "dicom" and item.dicom_source else None
        record = {"sha256": source_sha256, "sha256_method": item.sha256_method} if item.sha256_method else None
        translator.write(
            result, target, output_format, dicom_source=source, source_sha256=source_sha256, source_record=record
        )
    except (MedxlateError, OSError, RuntimeError, ValueError) as e:
        log.warning("translate: %s failed (see %s)", item.name, SUMMARY_NAME)
        return "failed", f"{type(e).__name__}: {e}"
    return "translated", ""


def _write_summary(path: Path, rows: list[dict[str, str]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["input", "output", "status", "seconds", "message"])
        writer.writeheader()
        writer.writerows(rows)


def translate_batch(
    translator: Translator,
    input_root: str | Path,
    output_dir: str | Path,
    *,
    output_format: Literal["nifti", "dicom"] = "nifti",
    split: str = "test",
    progress: bool = False,
    identifiers: bool = False,
) -> BatchResult:
    """Translate every volume found under ``input_root`` into ``output_dir``.

    Outputs are ``<name>_synthetic_<modality>.nii.gz`` (or a folder of that name without the
    suffix for DICOM), each with a provenance sidecar; ``translation_summary.csv`` lists input,
    output, status, seconds and the error message of failed items.

    Args:
        translator: The model.
        input_root: Folder of volumes, DICOM tree, or prepared dataset.
        output_dir: Where outputs and the summary go (created; locked while the batch runs).
        output_format: ``nifti`` or ``dicom``.
        split: Which split of a prepared dataset.
        progress: Show progress on stderr (a bar on a terminal, else a line per volume).
        identifiers: List inputs by path and leave messages unredacted. Otherwise an input is its
            file name, case id or ``"<modality> series '<description>' (<n> images)"``, and the
            input folder, the paths below it and the series' identifiers are ``<redacted>``.

    Returns:
        The per-item rows and the summary path.

    Raises:
        InputDataError: if nothing translatable is found.
        OutputError: if ``output_dir`` is or lies inside ``input_root``.
        FolderLockedError: if another process writes into ``output_dir``.
    """
    from medxlate.io.guard import guard_output
    from medxlate.io.lock import folder_lock

    guard_output(output_dir, [input_root], "output folder")  # never into (or over) the inputs
    items = collect_inputs(Path(input_root), translator.provenance.get("source_modality"), split)
    redact = _redactor(Path(input_root), items)
    out = Path(output_dir)
    suffix = "" if output_format == "dicom" else ".nii.gz"
    rows = []
    with folder_lock(out, "medxlate translate"):
        clean_stale_temporaries(out)  # left by a killed run; ours cannot be in use (we hold the lock)
        for item in track(items, desc="translate", unit="volume", enabled=progress):
            target = out / f"{item.name}_synthetic_{translator.target_modality.lower()}{suffix}"
            start = time.perf_counter()
            status, message = _translate_item(translator, item, target, output_format)
            seconds = f"{time.perf_counter() - start:.2f}" if status != "skipped" else ""
            shown, message = (item.input, message) if identifiers else (redact(item.label), redact(message))
            row = {"input": shown, "output": str(target), "status": status, "seconds": seconds}
            rows.append({**row, "message": message})
        summary = out / SUMMARY_NAME
        _write_summary(summary, rows)
    return BatchResult(rows=rows, summary_path=summary)
