"""A folder of CT volumes as X-ray -> CT data: no MR partner and no ``medxlate prepare`` needed.

What counts as a volume:

* the folder's NIfTI/NRRD/MetaImage files (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``,
  ``.mhd``; its top level only, hidden files skipped), each one CT in HU;
* otherwise a DICOM tree: every CT image series :func:`medxlate.io.scan_dicom` finds with at least
  two slices (localizers and single images are skipped, and counted in the log).

Case ids are ``ct_000``, ``ct_001``... in the order of the files' paths (a DICOM series: its first
file's path), so they are opaque (no name, UID or file name) and stable while the folder is unchanged.
Messages name a file by its path, a DICOM series by the folder given and its id only; errors raised
while reading a series have its paths and identifiers redacted.

Splits (:func:`medxlate.data.splits.threshold_splits`): each volume goes to ``val`` when
``sha256("<seed>:<identity>")``, read as a number in [0, 1), is below ``val_fraction``, else to
``train``. The identity is the SHA-256 of the file's bytes for a volume file, and the patient
(PatientID, else StudyInstanceUID) for a DICOM series, so every series of one patient (two
reconstructions of one scan) lands in the same split; it stays in memory, never written or logged.
A volume's split depends on itself alone: adding or removing volumes leaves the others where they
were. Only when a split would be empty (tiny folders) does the volume nearest the threshold move.

Content keys (the model-grid cache, :func:`medxlate.data.drr.build_grid_cache`): a volume file's
SHA-256 (already needed for its split); a DICOM series' relative path, size and ``mtime_ns`` of each
file (a rewritten file changes them), so a DICOM tree is never read in full to start training.
A ``.mhd``/``.nhdr`` header's detached data file is hashed with it. Hashing a folder of files reads
each file once; ``digest_memo`` (training keeps one in its data cache) remembers each file's digest
by path, size and ``mtime_ns``, so an unchanged folder is not read again (a modified file is
hashed anew). The memo stores hashed paths only.

Body masks: computed from each CT (:func:`medxlate.data.bodymask.body_mask_volume`) when its grid is
cached, so the metrics inside the body need no mask files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor

from medxlate.data.ct_source import CtCase, CtSource
from medxlate.data.splits import threshold_splits
from medxlate.errors import InputDataError, MedxlateError
from medxlate.io.sitk_formats import detached_data_file

__all__ = ["MASK_RECIPE", "read_ct_folder"]

log = logging.getLogger(__name__)

#: How a folder case's body mask is made; part of its content key (a new recipe rebuilds the cache).
MASK_RECIPE = "body_mask_from_ct:-500"
_MIN_SLICES = 2


def read_ct_folder(root: Path, val_fraction: float, split_seed: int, digest_memo: Path | None = None) -> CtSource:
    """The CT volumes of a folder (files or a DICOM tree), as train and val cases.

    Args:
        root: The folder.
        val_fraction: Share of volumes for validation, in (0, 1).
        split_seed: Seed of the assignment.
        digest_memo: JSON file of remembered file digests (read and updated), or ``None``.

    Returns:
        The cases by split (``train`` and ``val``, each non-empty).

    Raises:
        InputDataError: if ``root`` is not a folder, holds no CT volume (files or DICOM CT series),
            or fewer than two.
    """
    if not root.is_dir():
        raise InputDataError(
            f"{root}: not found; expected a prepared dataset (dataset.json), a folder of CT volumes "
            "(NIfTI/NRRD/MetaImage files) or a DICOM tree with CT series"
        )
    files = _volume_files(root)
    cases, identities = _file_cases(files, digest_memo) if files else _dicom_cases(root)
    if len(cases) < 2:
        raise InputDataError(
            f"{root}: found {len(cases)} CT volume; X-ray -> CT needs at least 2 (one to train on, one to validate)"
        )
    assigned = threshold_splits(identities, val_fraction, split_seed)
    splits = {name: tuple(c for c, s in zip(cases, assigned, strict=True) if s == name) for name in ("train", "val")}
    listing = json.dumps([[c.id, s, c.key] for c, s in zip(cases, assigned, strict=True)])
    log.info(
        "X-ray -> CT: %d CT volumes in %s: %d train, %d val",
        len(cases),
        root,
        len(splits["train"]),
        len(splits["val"]),
    )
    return CtSource(root, root.resolve().name, hashlib.sha256(listing.encode()).hexdigest(), splits)


def _volume_files(root: Path) -> list[Path]:
    from medxlate.io.load import VOLUME_SUFFIXES

    return sorted(
        p
        for p in root.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(VOLUME_SUFFIXES)
    )


def _data_files(header: Path) -> list[Path]:
    """The detached data file of a ``.mhd``/``.nhdr`` header (hashed with it), if any."""
    data = detached_data_file(header)
    return [] if data is None else [data]


def _case_ids(count: int) -> list[str]:
    width = max(3, len(str(count - 1)))
    return [f"ct_{n:0{width}d}" for n in range(count)]


def _file_cases(files: Sequence[Path], digest_memo: Path | None) -> tuple[list[CtCase], list[str]]:
    memo = _DigestMemo(digest_memo)
    digests = []
    for path in files:
        parts = [memo.digest(part) for part in (path, *_data_files(path))]
        digests.append(parts[0] if len(parts) == 1 else hashlib.sha256(":".join(parts).encode()).hexdigest())
    memo.save()
    cases = []
    for case_id, path, digest in zip(_case_ids(len(files)), files, digests, strict=True):

        def load(path: Path = path) -> tuple[MetaTensor, MetaTensor | None]:
            from medxlate.io import load_volume

            ct = load_volume(path)
            return _with_mask(ct, str(path))

        cases.append(CtCase(case_id, str(path), f"file:{digest}:{MASK_RECIPE}", load))
    return cases, digests


def _dicom_cases(root: Path) -> tuple[list[CtCase], list[str]]:
    from medxlate.io import scan_dicom

    scan = scan_dicom(root)
    images = [s for s in scan.series if s.is_image]
    ct = [s for s in images if s.modality.upper() == "CT"]
    volumes = sorted((s for s in ct if s.n_slices >= _MIN_SLICES), key=lambda s: min(s.files))
    if not volumes:
        found = sorted({s.modality for s in images}) or ["none"]
        raise InputDataError(
            f"{root}: no CT volume found; expected NIfTI/NRRD/MetaImage files (this folder's top level) or a "
            f"DICOM tree with CT series of at least {_MIN_SLICES} slices; found DICOM image series of modality "
            f"{', '.join(found)} ({len(ct)} CT series, none a volume)"
        )
    if len(ct) > len(volumes):
        log.info(
            "X-ray -> CT: %d CT series in %s are not volumes (localizers, single images): skipped",
            len(ct) - len(volumes),
            root,
        )
    ids = _case_ids(len(volumes))
    cases = [_series_case(case_id, info, root, scan.root) for case_id, info in zip(ids, volumes, strict=True)]
    identities = [str(s.identifiers.get("PatientID") or s.study_uid) for s in volumes]
    return cases, identities


def _series_case(case_id: str, info: Any, root: Path, base: Path) -> CtCase:
    """A DICOM series as a case; ``base`` is the scanned folder its file paths start with."""
    from medxlate.data.privacy import Redactor

    label = f"{root}: CT series {case_id}"
    stats = [(str(f.relative_to(base)), f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(info.files)]
    key = hashlib.sha256(json.dumps(stats).encode()).hexdigest()

    def load() -> tuple[MetaTensor, MetaTensor | None]:
        from medxlate.io import load_series

        try:
            ct = load_series(info)
        except MedxlateError as e:
            secrets = [*info.identifiers.values(), info.series_uid, info.study_uid, info.frame_of_reference_uid]
            redact = Redactor.for_inputs(base, info.files, secrets)
            raise type(e)(f"{label}: {redact(str(e))}") from None  # the cause holds paths and UIDs
        return _with_mask(ct, label)

    return CtCase(case_id, label, f"dicom:{key}:{MASK_RECIPE}", load)


def _with_mask(ct: MetaTensor, label: str) -> tuple[MetaTensor, MetaTensor]:
    """The CT and its body mask, once the CT is known to be one finite 3D volume."""
    from medxlate.data.bodymask import body_mask_volume

    if ct.shape[0] != 1 or min(ct.shape[1:]) < _MIN_SLICES:
        raise InputDataError(
            f"{label}: not a 3D CT volume: loaded shape (C, X, Y, Z) = {tuple(ct.shape)}; expected one channel "
            f"and at least {_MIN_SLICES} voxels along every axis"
        )
    bad = int((~torch.isfinite(ct)).sum()) if ct.is_floating_point() else 0
    if bad:
        raise InputDataError(f"{label}: {bad} of {ct.numel()} voxels are NaN/inf; expected a CT in HU")
    return ct, body_mask_volume(ct)


class _DigestMemo:
    """SHA-256 of files, remembered by (hashed path, size, ``mtime_ns``) in an optional JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list[Any]] = {}
        self.changed = False
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                self.entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                self.entries = {}  # a damaged memo is only a cache: hash again

    def digest(self, file: Path) -> str:
        from medxlate.io.provenance import sha256_file

        stat = file.stat()
        where = hashlib.sha256(str(file.resolve()).encode()).hexdigest()
        entry = self.entries.get(where)
        if isinstance(entry, list) and entry[:2] == [stat.st_size, stat.st_mtime_ns] and len(entry) == 3:
            return str(entry[2])
        digest = sha256_file(file)
        self.entries[where] = [stat.st_size, stat.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        from medxlate.io.atomic import write_bytes_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path, json.dumps(self.entries, sort_keys=True).encode("utf-8"))
