"""What identifies an input image: content hashes, the DICOM series, the geometry as read.

A translated volume's provenance sidecar must let a reader trace it back to its exact input. For
files (NIfTI, NRRD, MetaImage, one DICOM file) that is the SHA-256 of the file. For a DICOM series
folder it is the series' SeriesInstanceUID, the number of its files and a content hash over exactly
those files (:func:`hash_files`: SHA-256 of the sorted per-file SHA-256 hex digests, joined by
newlines, so it does not depend on file names or order and can be recomputed with ``sha256sum``).

The series UID identifies a study of a patient: it belongs in outputs that stay in the hospital
(translate sidecars) and must never reach a prepared dataset or MLflow. :data:`HOSPITAL_ONLY_KEYS`
names the sidecar keys that may carry it, for :func:`medxlate.io.save.write_provenance`.
Everything here is computed before any output is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "HASH_FILES_METHOD",
    "HOSPITAL_ONLY_KEYS",
    "describe_geometry",
    "describe_source",
    "hash_files",
    "sha256_file",
]

HASH_FILES_METHOD = "sha256 of the sorted per-file sha256 hex digests joined by newlines"
HOSPITAL_ONLY_KEYS = frozenset({"source.series_instance_uid", "source.radiographs.series_instance_uid"})
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_files(paths: Iterable[Path]) -> str:
    """SHA-256 over the contents of ``paths``, independent of their names and order.

    Args:
        paths: Files to hash.

    Returns:
        Hex digest of the sorted per-file digests (see :data:`HASH_FILES_METHOD`).
    """
    digests = sorted(sha256_file(path) for path in paths)
    return hashlib.sha256("\n".join(digests).encode("ascii")).hexdigest()


def _dicom_series(folder: Path) -> dict[str, Any]:
    """Series UID, file count and content hash of the one DICOM series in ``folder``."""
    from medxlate.io.dicom import find_dicom_files
    from medxlate.io.scan import read_headers

    headers, _ = read_headers(find_dicom_files(folder))
    series = sorted({h.series_uid for h in headers})
    files = [h.path for h in headers if series and h.series_uid == series[0]]
    first = next(h for h in headers if h.path == files[0]) if files else None
    return {
        "kind": "dicom_series",
        "files": len(files),
        "sha256": hash_files(files),
        "sha256_method": HASH_FILES_METHOD,
        "series_instance_uid": series[0] if series else None,
        "modality": first.modality if first else None,
        "series_number": first.series_number if first else None,
    }


def describe_source(path: str | Path) -> dict[str, Any]:
    """Identify an input (before anything is written): where it is, what it is and its content hash.

    Args:
        path: The input given to ``load_volume``: an image file, a DICOM file or a DICOM series folder.

    Returns:
        ``path`` (absolute), ``kind`` (``file``, ``dicom_file``, ``dicom_series``), ``files``,
        ``sha256`` (file hash, or series content hash with ``sha256_method``) and, for DICOM,
        ``series_instance_uid``, ``modality`` and ``series_number``.
    """
    from medxlate.io.load import _is_dicom_file

    path = Path(path).expanduser().resolve()
    if path.is_dir():
        return {"path": str(path), **_dicom_series(path)}
    record: dict[str, Any] = {"path": str(path), "kind": "file", "files": 1, "sha256": sha256_file(path)}
    if _is_dicom_file(path):
        from medxlate.io.dicom_header import read_header

        header = read_header(path)
        record.update(
            kind="dicom_file",
            series_instance_uid=header.series_uid,
            modality=header.modality,
            series_number=header.series_number,
        )
    return record


def describe_geometry(volume: Any) -> dict[str, Any]:
    """Shape, spacing, orientation and affine of a loaded (C, X, Y, Z) MetaTensor, as read.

    Args:
        volume: A ``MetaTensor`` from ``load_volume`` (RAS affine).

    Returns:
        ``shape`` (spatial), ``spacing_mm``, ``orientation`` (nibabel axis codes, e.g. ``"LAS"``) and
        ``affine_ras`` (4x4, voxel -> RAS mm).
    """
    import nibabel as nib

    affine = np.asarray(volume.affine, dtype=np.float64)
    return {
        "shape": [int(n) for n in volume.shape[1:]],
        "spacing_mm": [float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0))],
        "orientation": "".join(nib.aff2axcodes(affine)),
        "affine_ras": affine.tolist(),
    }
