"""What ``prepare`` reads: a manifest of NIfTI pairs, or a DICOM export tree (hospital specifics).

Both become a list of :class:`~medxlate.data.build.CaseInput`: content hash, how to load the
volumes, a patient key for splits, the id-map columns. Only here do patient identifiers exist, and
only in memory (plus the id map the user asks for).

Manifest format (``manifest.json`` in the input folder)::

    {"name": "...", "source_modality": "CT", "target_modality": "MR",
     "cases": [{"id": "anything", "patient": "optional group key", "split": "train (optional)",
                "files": {"source": "a/ct.nii.gz", "target": "a/mr.nii.gz", "mask": "a/mask.nii.gz"}}]}

Paths are relative to the folder and must stay inside it (no ``..`` out of it, no absolute path or
symlink leading elsewhere) unless ``allow_outside_paths`` is set, which dataset.json then records.
Roles are lowercase identifiers (each becomes ``<role>.nii.gz``); ``mask`` is optional; other roles
are carried along. Cases of the same ``patient`` (default: the case's ``id``) share a split when
splits are assigned by config.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from monai.data import MetaTensor

from medxlate.config.prepare import PrepareConfig
from medxlate.data.build import CaseInput
from medxlate.data.casestore import hash_files
from medxlate.data.dataset import SPLITS
from medxlate.data.pairing import PairingResult, SeriesPair, pair_series, patient_key
from medxlate.data.privacy import Redactor
from medxlate.errors import InputDataError
from medxlate.io import load_volume
from medxlate.io.names import ROLE, outside_reason, require_name
from medxlate.io.sitk_formats import detached_data_file

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST", "check_inside", "dicom_cases", "file_case", "manifest_cases", "read_manifest", "unpaired_rows"]

MANIFEST = "manifest.json"
IDENTIFIER_FIELDS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "AccessionNumber",
    "InstitutionName",
    "StudyID",
)
_NEVER_LOADABLE = ("non_image", "unsupported_layout", "mosaic")
_IRREGULAR = ("duplicate_positions", "gap", "irregular_spacing")


def unusable_flags(cfg: PrepareConfig) -> tuple[str, ...]:
    """Scan flags of series that cannot be loaded with these loading settings."""
    flags = _NEVER_LOADABLE
    flags += _IRREGULAR if cfg.loading.on_irregular == "error" else ()
    return flags + (("gantry_tilt",) if cfg.loading.on_tilt == "error" else ())


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and check ``manifest.json`` (every problem that stops reading it at all is raised).

    Raises:
        InputDataError: Missing or malformed manifest, a case without source/target, a bad split.
    """
    path = root / MANIFEST
    if not path.is_file():
        hint = "" if root.is_dir() else f" and {root} does not exist"
        raise InputDataError(
            f"{path}: no manifest found{hint} (expected {MANIFEST} listing the paired volumes, or a DICOM tree)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputDataError(f"{path}: not valid JSON: {e}") from e
    cases = manifest.get("cases") if isinstance(manifest, dict) else None
    if not isinstance(cases, list) or not cases:
        raise InputDataError(f"{path}: expected a non-empty 'cases' list")
    for number, case in enumerate(cases):
        files = case.get("files") if isinstance(case, dict) else None
        if not isinstance(files, dict) or "source" not in files or "target" not in files:
            raise InputDataError(f"{path}: cases[{number}] needs 'files' with 'source' and 'target'")
        for role, value in files.items():
            require_name(role, ROLE, f"{path}: cases[{number}].files role")
            if not isinstance(value, str) or not value:
                raise InputDataError(
                    f"{path}: cases[{number}].files.{role} is {value!r}; expected a file path relative to {root}"
                )
        if case.get("split") is not None and case.get("split") not in SPLITS:
            raise InputDataError(
                f"{path}: cases[{number}] has split {case.get('split')!r}, expected one of {', '.join(SPLITS)}"
            )
    return manifest


def _load_files(paths: dict[str, Path]) -> dict[str, MetaTensor]:
    return {role: load_volume(path) for role, path in paths.items()}


def _content_key(paths: list[Path], fallback: str) -> str:
    try:
        return hash_files(paths)
    except OSError:  # reported when the case is loaded
        return hashlib.sha256(f"unreadable:{fallback}".encode()).hexdigest()


def check_inside(root: Path, path: Path, where: str, allow: bool) -> bool:
    """Refuse an input file outside ``root`` unless ``allow``; return whether it lies outside.

    Args:
        root: The input folder.
        path: The file (absolute, or relative to ``root``).
        where: How the message names it (the manifest and field, or the file).
        allow: ``allow_outside_paths`` of the prepare config.

    A detached ``.mhd``/``.nhdr`` header's data file (``ElementDataFile``, ``data file``) is read
    with it, so it must stay inside ``root`` too.

    Raises:
        InputDataError: ``path`` (or the data file its header names) leaves ``root`` (``..``,
            absolute, symlink) and ``allow`` is off.
    """
    reason = outside_reason(path, root)
    header = path if path.is_absolute() else root / path
    data = detached_data_file(header) if reason is None and header.is_file() else None
    if data is not None and (data_reason := outside_reason(data, root)) is not None:
        reason = f"a header whose data file {data} is {data_reason}"
    if reason is not None and not allow:
        raise InputDataError(
            f"{where} is {str(path)!r}: {reason}; expected a file inside the input folder {root} "
            "(set allow_outside_paths: true in the prepare config, or --set allow_outside_paths=true, to read "
            "it anyway; dataset.json then records it)"
        )
    return reason is not None


def file_case(
    files: dict[str, Path], names: dict[str, str], cfg: PrepareConfig, fallback: str, **facts: Any
) -> CaseInput:
    """A case made of volume files (a manifest entry, a case folder).

    Args:
        files: Role -> file; ``source`` and ``target`` at least.
        names: Role -> how messages name that file.
        cfg: Prepare settings (``grid_mismatch``).
        fallback: Distinguishes the content key of a case whose files cannot be read.
        **facts: The other :class:`~medxlate.data.build.CaseInput` fields (``label``, ``group``,
            ``modalities``, ``id_map``, ``split``, ``redact``).

    Returns:
        The case; its ``input_key`` hashes the files' content and the set of roles.
    """
    ordered = {"source": files["source"], **{r: p for r, p in files.items() if r != "source"}}
    key = _content_key(list(ordered.values()), fallback)
    role_key = hashlib.sha256(f"{key}:{sorted(files)}".encode()).hexdigest()  # roles matter too
    return CaseInput(
        input_key=role_key,
        names={role: names[role] for role in ordered},
        load=functools.partial(_load_files, ordered),
        allow_resample=cfg.grid_mismatch == "resample",
        **facts,
    )


def manifest_cases(root: Path, cfg: PrepareConfig) -> tuple[list[CaseInput], dict[str, Any]]:
    """Cases of a NIfTI manifest, in manifest order.

    Args:
        root: Folder holding ``manifest.json``.
        cfg: Prepare settings (modalities default to the pairing rules' when the manifest has none).

    Returns:
        The cases and the dataset metadata (``name``, ``source_modality``, ``target_modality`` and,
        with ``allow_outside_paths``, ``outside_files``: how many files lie outside ``root``).

    Raises:
        InputDataError: A malformed manifest (see :func:`read_manifest`), or a file outside ``root``
            while ``allow_outside_paths`` is off.
    """
    manifest = read_manifest(root)
    modalities = {
        "source": str(manifest.get("source_modality", cfg.pairing.source.modality)).upper(),
        "target": str(manifest.get("target_modality", cfg.pairing.target.modality)).upper(),
    }
    cases, outside = [], 0
    for number, case in enumerate(manifest["cases"]):
        rel = {role: str(value) for role, value in case["files"].items()}
        for role, value in rel.items():
            where = f"{root / MANIFEST}: cases[{number}].files.{role}"
            outside += check_inside(root, Path(value), where, cfg.allow_outside_paths)
        cases.append(
            file_case(
                {role: root / value for role, value in rel.items()},
                rel,
                cfg,
                f"{number}",
                label=f"case #{number}",
                group=str(case.get("patient", case.get("id", f"#{number}"))),
                modalities=modalities,
                id_map={"manifest_id": case.get("id"), "patient": case.get("patient"), **rel},
                split=case.get("split"),
            )
        )
    meta = {"name": manifest.get("name"), **{f"{role}_modality": m for role, m in modalities.items()}}
    return cases, meta | ({"outside_files": outside} if cfg.allow_outside_paths else {})


def _load_pair(pair: SeriesPair, cfg: PrepareConfig, redact: Redactor) -> dict[str, MetaTensor]:
    from medxlate.io.load import load_series

    options = {"on_irregular": cfg.loading.on_irregular, "on_tilt": cfg.loading.on_tilt}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volumes = {"source": load_series(pair.source, **options), "target": load_series(pair.target, **options)}
    for warning in caught:  # loader warnings name files: re-emit them without identifiers
        logger.warning("patient %s: %s", pair.patient, redact(str(warning.message)))
    return volumes


def _series_name(series: Any) -> str:
    return f"{series.modality} series '{series.description or 'no description'}' ({series.n_instances} images)"


def _id_row(pair_or_series: Any, label: str) -> dict[str, object]:
    """Id-map columns: identifiers, UIDs, dates and descriptions of a pair's series."""
    source = getattr(pair_or_series, "source", pair_or_series)
    ids = source.identifiers
    row: dict[str, object] = {"patient": label, **{name: ids.get(name) for name in IDENTIFIER_FIELDS}}
    for role in ("source", "target"):
        series = getattr(pair_or_series, role, None)
        row[f"{role}_study_uid"] = getattr(series, "study_uid", None)
        row[f"{role}_series_uid"] = getattr(series, "series_uid", None)
        row[f"{role}_study_date"] = getattr(series, "study_date", None)
        row[f"{role}_description"] = getattr(series, "description", None)
        row[f"{role}_accession"] = series.identifiers.get("AccessionNumber") if series is not None else None
    return row


def _redactor(root: Path, scan: Any) -> Redactor:
    values: list[str] = []
    for series in scan.series:
        values += [str(v) for v in series.identifiers.values() if v]
        values += [str(getattr(series, a, "") or "") for a in ("series_uid", "study_uid", "frame_of_reference_uid")]
    files = [Path(f) for series in scan.series for f in series.files]
    files += [Path(problem.path) for problem in scan.problems]
    return Redactor.for_inputs(root, files, values)


def dicom_cases(root: Path, cfg: PrepareConfig) -> tuple[list[CaseInput], PairingResult, list[str]]:
    """Scan a DICOM tree, pair series per patient and describe each pair as a case.

    Args:
        root: The export's top folder.
        cfg: Pairing, loading and scan settings.

    Returns:
        The cases (ordered by content hash), the pairing result (for the unpaired report and the id
        map) and notes (scan problems, ambiguous picks), all without identifiers.
    """
    from medxlate.io.scan import scan_dicom

    scan = scan_dicom(root, workers=cfg.scan_workers)
    redact = _redactor(root, scan)
    notes = []
    if scan.problems:
        notes.append(
            f"scan: {len(scan.problems)} file(s) skipped (not DICOM, truncated or without pixel data); "
            "run 'medxlate scan' on the folder for the list"
        )
    result = pair_series(scan.series, cfg.pairing, unusable_flags(cfg))
    cases = []
    for pair in result.pairs:
        if pair.note:
            notes.append(f"patient {pair.patient}: {pair.note}")
        key = hashlib.sha256(
            f"{hash_files(map(Path, pair.source.files))}:{hash_files(map(Path, pair.target.files))}".encode()
        ).hexdigest()
        cases.append(
            CaseInput(
                label=f"patient {pair.patient}",
                group=repr(patient_key(pair.source)),
                input_key=key,
                names={"source": redact(_series_name(pair.source)), "target": redact(_series_name(pair.target))},
                modalities={"source": cfg.pairing.source.modality, "target": cfg.pairing.target.modality},
                load=functools.partial(_load_pair, pair, cfg, redact),
                id_map=_id_row(pair, pair.patient),
                redact=redact,
            )
        )
    return sorted(cases, key=lambda c: c.input_key), result, notes


def unpaired_rows(result: PairingResult) -> list[dict[str, object]]:
    """Id-map rows for the patients that got no pair (identifiers of their first series)."""
    rows = []
    for report in result.unpaired:
        first = report.series[0] if report.series else None
        ids = first.identifiers if first is not None else {}
        rows.append(
            {
                "status": "unpaired",
                "patient": report.patient,
                **{name: ids.get(name) for name in IDENTIFIER_FIELDS},
                "note": report.problem,
                "series_uids": " ".join(str(s.series_uid) for s in report.series),
            }
        )
    return rows
