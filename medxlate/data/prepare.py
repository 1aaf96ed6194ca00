"""Prepare a folder of paired NIfTI volumes into the dataset layout training reads.

Input: a folder with ``manifest.json`` listing cases::

    {"cases": [{"id": "anything", "split": "train",
                "files": {"source": "a/ct.nii.gz", "target": "a/mr.nii.gz", "mask": "a/mask.nii.gz"}}]}

(paths relative to the folder; ``mask`` optional, computed from the CT when absent; other roles
such as ``target_noise_free`` are carried along). Output: ``dataset.json`` + ``cases/<opaque id>/``.
Case ids in the output are opaque (``case_000``...), whatever the input called them. Each case is
written to a temporary folder and renamed into place, so an interrupted run leaves no half case.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medxlate.data.bodymask import body_mask_from_ct
from medxlate.data.dataset import SPLITS, write_dataset_index
from medxlate.errors import InputDataError
from medxlate.io import load_volume, save_volume

logger = logging.getLogger(__name__)
MANIFEST = "manifest.json"
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def prepare_dataset(source_root: str | Path, out_dir: str | Path) -> Path:
    """Check and copy paired volumes into ``out_dir`` (see module docstring).

    Args:
        source_root: Folder holding ``manifest.json`` and the volumes.
        out_dir: Dataset folder to (re)write; rerunning gives the same result.

    Returns:
        Path of the written ``dataset.json``.

    Raises:
        InputDataError: if the manifest is missing/malformed or any case is unusable; every
            problem is listed, and no case folder is left half-written.
    """
    source_root, out_dir = Path(source_root), Path(out_dir)
    manifest = _read_manifest(source_root)
    (out_dir / "cases").mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, case in enumerate(manifest["cases"]):
        case_id = f"case_{number:03d}"
        try:
            files = _prepare_case(source_root, case, out_dir / "cases", case_id)
        except InputDataError as e:
            problems.append(f"case #{number}: {e}")
            continue
        entries.append({"id": case_id, "split": case["split"], "files": files})
    if problems:
        raise InputDataError(
            f"{source_root}: {len(problems)} case(s) could not be prepared:\n  " + "\n  ".join(problems)
        )
    meta = {k: manifest[k] for k in ("source_modality", "target_modality") if k in manifest}
    return write_dataset_index(out_dir, manifest.get("name", source_root.name), entries, **meta)


def _read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise InputDataError(f"{path}: no manifest found (expected {MANIFEST} listing the paired volumes)")
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
        if case.get("split") not in SPLITS:
            raise InputDataError(
                f"{path}: cases[{number}] has split {case.get('split')!r}, expected one of {', '.join(SPLITS)}"
            )
    return manifest


def _prepare_case(root: Path, case: dict[str, Any], cases_dir: Path, case_id: str) -> dict[str, str]:
    inputs = {role: root / rel for role, rel in case["files"].items()}
    volumes = {role: load_volume(path) for role, path in inputs.items()}
    source = volumes["source"]
    for role, volume in volumes.items():
        if tuple(volume.shape[1:]) != tuple(source.shape[1:]):
            raise InputDataError(
                f"{inputs[role]}: {role} has shape {tuple(volume.shape[1:])}, expected the source's "
                f"{tuple(source.shape[1:])} ({inputs['source'].name})"
            )
        if not torch.allclose(torch.as_tensor(volume.affine), torch.as_tensor(source.affine), atol=1e-3):
            raise InputDataError(
                f"{inputs[role]}: {role} affine differs from the source's ({inputs['source'].name})"
            )
    final = cases_dir / case_id
    staging = Path(tempfile.mkdtemp(prefix=f".{case_id}.", dir=cases_dir))
    try:
        files = {role: _store(inputs[role], volumes[role], staging / f"{role}.nii.gz") for role in inputs}
        if "mask" not in files:
            mask = body_mask_from_ct(source[0].numpy())
            save_volume(
                torch.from_numpy(mask[None].astype(np.uint8)),
                staging / "mask.nii.gz",
                affine=source.affine,
                dtype=np.uint8,
            )
            files["mask"] = "mask.nii.gz"
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {role: f"cases/{case_id}/{name}" for role, name in files.items()}


def _store(path: Path, volume: Any, destination: Path) -> str:
    """Copy NIfTI files byte for byte (keeps dtype and header); convert anything else."""
    if path.name.endswith(".nii.gz"):
        shutil.copyfile(path, destination)
    else:
        save_volume(volume, destination)
    return destination.name
