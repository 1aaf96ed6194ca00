"""``prepare``: a DICOM export tree or a folder of NIfTI pairs -> the dataset layout training reads.

Input, detected automatically: a folder with ``manifest.json`` (NIfTI pairs, see
:mod:`medxlate.data.inputs`), else case folders of role-named volumes such as SynthRAD's
``<region>/<case>/{ct,mr,mask}.mha`` (:mod:`medxlate.data.folders`), else a DICOM tree (scanned
with ``medxlate.io.scan.scan_dicom``; series paired per patient by :mod:`medxlate.data.pairing`).
A folder of other volumes gets an error showing the manifest it needs.

Output (``out_dir``)::

    dataset.json                      written last, atomically (see medxlate.data.dataset)
    cases/<case id>/source.nii.gz     the source as read (CT padding clipped), clean NIfTI header
    cases/<case id>/target.nii.gz     the target on the source grid (resampled, optionally registered)
    cases/<case id>/mask.nii.gz       body mask (uint8) on the source grid
    cases/<case id>/case.json         fingerprint + record (see medxlate.data.casestore)

Each case entry of ``dataset.json`` has ``id``, ``split``, ``files``, ``fingerprint`` and
``registration`` (``{"metric": "mattes_mi", "value": ..., "initial_value": ..., "method": ...,
"translation_mm": ..., "rotation_deg": ..., "matrix": ...}``, see
:mod:`medxlate.data.registration`).

Privacy: case ids are opaque (``case_000``...), NIfTI files are written fresh by
``save_volume`` (never copied, so no header field of the input survives), and messages name cases by
id and opaque patient label with identifiers and input paths redacted. The table linking ids to
patients is written only to ``id_map`` (CSV), which must lie outside ``out_dir``.

Reruns: a case whose input content and settings are unchanged is skipped (files untouched);
``dataset.json`` is only rewritten when its content changes. A failed case is reported and nothing
is written for it; the others go on (see ``PrepareConfig.on_case_error``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medxlate.config.prepare import PrepareConfig
from medxlate.data.build import CaseInput, build_case
from medxlate.data.casestore import (
    StoredCase,
    assign_ids,
    case_fingerprint,
    clean_temporaries,
    existing_cases,
    remove_stale,
    unchanged,
    write_case,
)
from medxlate.data.dataset import write_dataset_index
from medxlate.data.folders import folder_cases, manifest_hint
from medxlate.data.inputs import MANIFEST, dicom_cases, manifest_cases, unpaired_rows
from medxlate.data.ownership import DATASET_UID_COLUMN, check_id_map_owner, dataset_uid
from medxlate.data.privacy import check_id_map_location, write_id_map
from medxlate.data.splits import assign_splits
from medxlate.errors import InputDataError
from medxlate.io.guard import guard_output
from medxlate.io.lock import folder_lock

logger = logging.getLogger(__name__)

__all__ = ["PrepareReport", "prepare_dataset", "run_prepare"]


@dataclass(frozen=True)
class PrepareReport:
    """What a prepare run did; every message is free of identifiers.

    Attributes:
        dataset: The ``dataset.json`` written.
        written: Ids of cases (re)written this run.
        unchanged: Ids of cases skipped because input and settings did not change.
        failed: One message per failed case (id, opaque label, problem).
        unpaired: One message per patient without a pair (DICOM input).
        notes: Scan problems, ambiguous picks, removed stale cases.
        id_map: Where the id map was written, if asked.
    """

    dataset: Path
    written: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    unpaired: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    id_map: Path | None = None

    def summary(self) -> str:
        """Readable multi-line summary (for the CLI)."""
        lines = [
            f"{len(self.written)} case(s) written, {len(self.unchanged)} unchanged, {len(self.failed)} failed, "
            f"{len(self.unpaired)} patient(s) unpaired"
        ]
        lines += [f"failed: {m}" for m in self.failed] + [f"unpaired: {m}" for m in self.unpaired]
        lines += [f"note: {m}" for m in self.notes]
        lines.append(f"dataset index: {self.dataset}")
        if self.id_map is not None:
            lines.append(f"id map: {self.id_map}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Collected:
    cases: list[CaseInput]
    meta: dict[str, Any]
    kind: str
    unpaired: tuple[str, ...] = ()
    unpaired_rows: tuple[dict[str, object], ...] = ()
    notes: tuple[str, ...] = ()


def _collect(source_root: Path, cfg: PrepareConfig) -> _Collected:
    if (source_root / MANIFEST).is_file() or not source_root.is_dir():
        cases, meta = manifest_cases(source_root, cfg)
        return _Collected(cases, meta, "manifest")
    modalities = {"source_modality": cfg.pairing.source.modality, "target_modality": cfg.pairing.target.modality}
    folders = folder_cases(source_root, cfg)
    if folders is not None:
        return _Collected(
            folders.cases,
            modalities | ({"outside_files": folders.outside} if cfg.allow_outside_paths else {}),
            "folders",
            unpaired=tuple(f"{label}: {problem}" for label, problem, _ in folders.unpaired),
            unpaired_rows=tuple(
                {"status": "unpaired", "patient": label, "folder": rel, "note": problem}
                for label, problem, rel in folders.unpaired
            ),
        )
    cases, pairing, notes = dicom_cases(source_root, cfg)
    if not cases and not pairing.unpaired and (hint := manifest_hint(source_root)) is not None:
        raise InputDataError(hint)
    return _Collected(
        cases,
        modalities,
        "dicom",
        unpaired=tuple(f"patient {r.patient}: {r.problem}" for r in pairing.unpaired),
        unpaired_rows=tuple(unpaired_rows(pairing)),
        notes=tuple(notes),
    )


def _prepare_one(case: CaseInput, case_id: str, cases_dir: Path, cfg: PrepareConfig) -> tuple[StoredCase, bool]:
    """Build and write one case unless it is unchanged; returns (stored case, written?)."""
    from medxlate.io import save_volume

    fingerprint = case_fingerprint(case.input_key, cfg.output_settings())
    stored = unchanged(cases_dir, case_id, fingerprint)
    if stored is not None:
        return stored, False
    built = build_case(case, cfg)

    def writer(volume: Any, dtype: Any) -> Callable[[Path], None]:
        return lambda path: save_volume(volume, path, dtype=dtype) and None  # a fresh, clean header

    writers = {role: writer(volume, dtype) for role, (volume, dtype) in built.volumes.items()}
    pending = StoredCase(case_id, fingerprint, case.input_key, {}, built.record)
    return write_case(cases_dir, pending, writers), True


def _process(
    collected: _Collected, ids: list[str], cases_dir: Path, cfg: PrepareConfig
) -> tuple[dict[str, StoredCase], list[str], list[str], list[str]]:
    done: dict[str, StoredCase] = {}
    written, skipped, failed = [], [], []
    for case, case_id in zip(collected.cases, ids, strict=True):
        try:
            stored, was_written = _prepare_one(case, case_id, cases_dir, cfg)
        except Exception as e:  # one bad case never stops the others; KeyboardInterrupt does
            message = f"{case_id} ({case.label}): {case.redact(str(e))}"
            logger.error("prepare: %s", message)
            failed.append(message)
            continue
        done[case_id] = stored
        (written if was_written else skipped).append(case_id)
        registration = stored.record.get("registration", {})
        logger.info(
            "%s: %s (%s %s)",
            case_id,
            "written" if was_written else "unchanged",
            registration.get("metric", "metric"),
            registration.get("value"),
        )
    return done, written, skipped, failed


def _role_order(role: str) -> tuple[int, str]:
    """source, target, mask first, then other roles alphabetically (a stable dataset.json)."""
    order = ("source", "target", "mask")
    return (order.index(role) if role in order else len(order), role)


def _entries(done: dict[str, StoredCase], splits: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "id": case_id,
            "split": splits[case_id],
            "files": {role: f"cases/{case_id}/{stored.files[role]}" for role in sorted(stored.files, key=_role_order)},
            "fingerprint": stored.fingerprint,
            **json.loads(json.dumps(stored.record, sort_keys=True)),  # same order as read back from case.json
        }
        for case_id, stored in sorted(done.items())
    ]


def _id_rows(
    collected: _Collected, ids: list[str], done: dict[str, StoredCase], splits: dict[str, str]
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for case, case_id in zip(collected.cases, ids, strict=True):
        status = "prepared" if case_id in done else "failed"
        rows.append({"case_id": case_id, "status": status, "split": splits.get(case_id, ""), **case.id_map})
    return rows + [{"case_id": "", **row} for row in collected.unpaired_rows]


def _settings_hash(cfg: PrepareConfig) -> str:
    text = json.dumps(cfg.output_settings(), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_prepare(
    source_root: str | Path,
    out_dir: str | Path,
    config: PrepareConfig | None = None,
    *,
    id_map: str | Path | None = None,
    force: bool = False,
) -> PrepareReport:
    """Prepare a dataset from NIfTI pairs or a DICOM tree (see the module docstring).

    The dataset folder is locked for the whole run (a second ``prepare`` into it fails at once,
    naming the first). Neither the dataset nor the id map may lie inside the input.

    Args:
        source_root: Folder holding ``manifest.json``, case folders (SynthRAD layout), or the top
            folder of a DICOM export.
        out_dir: Dataset folder to write or update.
        config: Prepare settings; ``None`` for the defaults.
        id_map: CSV path for the case -> patient table; must lie outside ``out_dir``. ``None``
            writes no table. An existing file there is replaced only if it is this dataset's id map
            (see :mod:`medxlate.data.ownership`) or ``force`` is given.
        force: Replace an existing file at ``id_map`` even if it is not this dataset's id map.

    Returns:
        The report (written, unchanged, failed cases; unpaired patients; notes).

    Raises:
        InputDataError: Unusable input (no manifest, case folder or DICOM series; no pair at all; a
            manifest role that is not an identifier; a file outside the input folder), an id map
            inside ``out_dir``, or (``on_case_error: raise``) failed cases, listed all at once after
            every other case was prepared; then ``dataset.json`` is left as it was.
        OutputError: ``out_dir`` or ``id_map`` inside the input, or a foreign file at ``id_map``.
        FolderLockedError: another process is writing into ``out_dir``.
    """
    cfg = config or PrepareConfig()
    source_root, out_dir = Path(source_root), Path(out_dir)
    guard_output(out_dir, [source_root], "dataset folder")
    map_path = None
    if id_map is not None:
        map_path = check_id_map_location(guard_output(id_map, [source_root], "id map"), out_dir)
    with folder_lock(out_dir, "medxlate prepare"):
        if map_path is not None:  # checked under the lock: no other prepare can write it meanwhile
            check_id_map_owner(map_path, dataset_uid(out_dir, create=False) or "", force)
        return _run_locked(source_root, out_dir, cfg, map_path)


def _run_locked(source_root: Path, out_dir: Path, cfg: PrepareConfig, map_path: Path | None) -> PrepareReport:
    """The body of :func:`run_prepare`, run while ``out_dir`` is locked."""
    collected = _collect(source_root, cfg)
    _require_pairs(collected, source_root, map_path, out_dir)
    cases_dir = out_dir / "cases"
    cases_dir.mkdir(parents=True, exist_ok=True)
    clean_temporaries(cases_dir)
    ids = assign_ids([c.input_key for c in collected.cases], existing_cases(cases_dir))
    done, written, skipped, failed = _process(collected, ids, cases_dir, cfg)
    by_id = dict(zip(ids, collected.cases, strict=True))
    splits = assign_splits(
        {i: by_id[i].group for i in done},
        {i: by_id[i].input_key for i in done},
        cfg.splits,
        {i: by_id[i].split for i in done},
    )
    if map_path is not None:
        write_id_map(map_path, _owned(out_dir, _id_rows(collected, ids, done, splits)))
    if failed and (cfg.on_case_error == "raise" or not done):
        raise InputDataError(
            f"{len(failed)} case(s) could not be prepared (dataset.json not written; "
            f"{len(done)} other case(s) are ready and will be skipped on a rerun):\n  " + "\n  ".join(failed)
        )
    index = _write_index(out_dir, cfg, collected, done, splits)
    removed = remove_stale(cases_dir, done)
    notes = list(collected.notes)
    if removed:
        notes.append(f"removed case folder(s) no longer in the input: {', '.join(removed)}")
    report = PrepareReport(
        index, tuple(written), tuple(skipped), tuple(failed), collected.unpaired, tuple(notes), map_path
    )
    logger.info("prepare: %s", report.summary().splitlines()[0])
    return report


def _owned(out_dir: Path, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Id map rows, each led by the dataset's uid (one row with only the uid when there is none)."""
    uid = dataset_uid(out_dir)
    return [{DATASET_UID_COLUMN: uid, **row} for row in rows] or [{DATASET_UID_COLUMN: uid}]


def _require_pairs(collected: _Collected, source_root: Path, map_path: Path | None, out_dir: Path) -> None:
    """Log the unpaired patients; raise (after writing the id map) when there is no pair at all."""
    for message in collected.unpaired:
        logger.warning("prepare: unpaired %s", message)
    if collected.cases:
        return
    if map_path is not None:
        write_id_map(map_path, _owned(out_dir, list(collected.unpaired_rows)))
    raise InputDataError(
        f"{source_root}: no source/target pair found ({len(collected.unpaired)} patient(s) unpaired):\n  "
        + "\n  ".join(collected.unpaired or ("no image series",))
    )


def _write_index(
    out_dir: Path, cfg: PrepareConfig, collected: _Collected, done: dict[str, StoredCase], splits: dict[str, str]
) -> Path:
    record = {"input": collected.kind, "settings": cfg.output_settings(), "settings_sha256": _settings_hash(cfg)}
    if cfg.allow_outside_paths:  # an opt-in that weakens a guarantee is recorded with the data
        record |= {"allow_outside_paths": True, "outside_files": collected.meta.get("outside_files", 0)}
    meta = {**{k: v for k, v in collected.meta.items() if k not in ("name", "outside_files")}, "prepare": record}
    name = cfg.name or collected.meta.get("name") or out_dir.resolve().name
    return write_dataset_index(out_dir, str(name), _entries(done, splits), **meta)


def prepare_dataset(
    source_root: str | Path,
    out_dir: str | Path,
    config: PrepareConfig | None = None,
    *,
    id_map: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Prepare a dataset and return the path of its ``dataset.json`` (see :func:`run_prepare`).

    Args:
        source_root: Folder holding ``manifest.json``, or the top folder of a DICOM export.
        out_dir: Dataset folder to write or update.
        config: Prepare settings; ``None`` for the defaults.
        id_map: CSV path for the case -> patient table, outside ``out_dir``.
        force: Replace an existing file at ``id_map`` that is not this dataset's id map.

    Returns:
        Path of the written ``dataset.json``.

    Raises:
        InputDataError: See :func:`run_prepare`.
        OutputError: See :func:`run_prepare`.
    """
    return run_prepare(source_root, out_dir, config, id_map=id_map, force=force).dataset
