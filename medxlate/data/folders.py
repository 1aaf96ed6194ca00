"""Folders of role-named volumes (the SynthRAD layout), and the manifest a folder of other volumes needs.

Without ``manifest.json``, ``prepare`` looks for *case folders*: the input folder itself or any
folder below it (at most :data:`MAX_DEPTH` levels, hidden folders skipped) whose top level holds a
volume (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``) named after a modality or a
role::

    ct, mr, cbct       that modality's image: the source or the target by the pairing rules'
                       modalities (default CT -> MR; ``--set pairing.target.modality=CBCT`` for CBCT)
    source, target     that role
    mask, body_mask    the body mask (used as given; no mask is computed then)

This covers SynthRAD2023/2025 (``Task1/<region>/<case>/{ct,mr,mask}.mha`` or ``.nii.gz``, any
folder of that tree may be given) and a plain folder per case. Other files are ignored. A case folder
without both a source and a target is reported as unpaired, naming what it holds.

Privacy, as for DICOM input: cases are ordered by the content hash of their files, so the opaque
ids (``case_000``...) and labels (``folder #0``) say nothing of the folder names, which in a
hospital export may be patient names. Folder paths reach only the id map (``folder`` column);
messages name a case by label and file name (``folder #2 mr.mha``) with folder paths redacted.

A folder holding volumes under other names, and neither DICOM nor a manifest, gets an error showing
the manifest it needs, built from the files found (:func:`manifest_hint`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

from medxlate.config.prepare import PrepareConfig
from medxlate.data.build import CaseInput
from medxlate.data.inputs import MANIFEST, check_inside, file_case
from medxlate.data.privacy import Redactor
from medxlate.io.load import VOLUME_SUFFIXES

__all__ = ["MAX_DEPTH", "FolderCases", "folder_cases", "manifest_hint"]

MAX_DEPTH = 4
_MODALITIES = {"ct": "CT", "mr": "MR", "cbct": "CBCT"}
_ROLES = {"source": "source", "target": "target", "mask": "mask", "body_mask": "mask"}


@dataclass(frozen=True)
class FolderCases:
    """Case folders found below an input folder.

    Attributes:
        cases: The paired cases, ordered by content hash.
        unpaired: One ``(label, problem, folder relative to the input)`` per folder without a pair.
        outside: How many files lie outside the input folder (symlinks; with ``allow_outside_paths``).
    """

    cases: list[CaseInput]
    unpaired: list[tuple[str, str, str]]
    outside: int = 0


def _suffix(path: Path) -> str | None:
    """``.nii.gz`` for ``CT.nii.gz``; ``None`` for a hidden file or one that is not a volume."""
    name = path.name.lower()
    return None if name.startswith(".") else next((s for s in VOLUME_SUFFIXES if name.endswith(s)), None)


def _stem(path: Path) -> str | None:
    """``ct`` for ``CT.nii.gz``; ``None`` for a hidden file or one that is not a volume."""
    suffix = _suffix(path)
    return path.name.lower()[: -len(suffix)] if suffix is not None else None


def _walk(root: Path) -> dict[Path, list[Path]]:
    """Folder -> its volume files (top level, sorted), for ``root`` and folders up to MAX_DEPTH below."""
    found: dict[Path, list[Path]] = {}
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
        volumes = sorted(Path(folder) / f for f in files if _stem(Path(f)) is not None)
        if volumes:
            found[Path(folder)] = volumes
    return found


def _role(stem: str, cfg: PrepareConfig) -> str | None:
    if stem in _ROLES:
        return _ROLES[stem]
    modality = _MODALITIES.get(stem)
    wanted = {cfg.pairing.source.modality: "source", cfg.pairing.target.modality: "target"}
    return wanted.get(modality) if modality is not None else None


def _assign(volumes: list[Path], cfg: PrepareConfig) -> tuple[dict[str, Path], str | None]:
    """Role -> file of one case folder, and the problem that keeps it from being a pair (or ``None``)."""
    roles: dict[str, list[Path]] = {}
    for path in volumes:
        role = _role(_stem(path) or "", cfg)
        if role is not None:
            roles.setdefault(role, []).append(path)
    known = [p.name for p in volumes if (_stem(p) or "") in {*_MODALITIES, *_ROLES}]
    others = len(volumes) - len(known)  # other names may be identifying: counted, not shown
    listed = ", ".join(known) + (f" (and {others} other volume(s))" if others else "")
    doubled = [f"{role} ({', '.join(p.name for p in paths)})" for role, paths in roles.items() if len(paths) > 1]
    if doubled:
        return {}, f"found {listed}: more than one file for {'; '.join(doubled)}"
    missing = [role for role in ("source", "target") if role not in roles]
    if missing:
        rule = {"source": cfg.pairing.source.modality, "target": cfg.pairing.target.modality}
        unused = sorted({_MODALITIES[s] for p in volumes if (s := _stem(p) or "") in _MODALITIES} - set(rule.values()))
        hint = f" (set pairing.{missing[0]}.modality to {' or '.join(unused)} to use it)" if unused else ""
        wanted = " or ".join(f"no {rule[role]} image for the {role}" for role in missing)
        return {}, f"found {listed}: {wanted}{hint}"
    return {role: paths[0] for role, paths in roles.items()}, None


def _is_case_folder(volumes: list[Path]) -> bool:
    return any((_stem(p) or "") in {*_MODALITIES, "source", "target"} for p in volumes)


def folder_cases(root: Path, cfg: PrepareConfig) -> FolderCases | None:
    """The case folders below ``root`` (see the module docstring), ``None`` if there is none.

    Args:
        root: The input folder (without ``manifest.json``).
        cfg: Prepare settings (pairing modalities, ``grid_mismatch``, ``allow_outside_paths``).

    Returns:
        The paired cases and the unpaired folders, or ``None`` when no folder holds a role-named image.

    Raises:
        InputDataError: A file that leads outside ``root`` (a symlink) while ``allow_outside_paths`` is off.
    """
    folders = {folder: volumes for folder, volumes in _walk(root).items() if _is_case_folder(volumes)}
    if not folders:
        return None
    redact = Redactor.for_inputs(root, list(folders), [])
    modalities = {"source": cfg.pairing.source.modality, "target": cfg.pairing.target.modality}
    cases, problems, outside = [], [], 0
    for folder, volumes in folders.items():
        rel = folder.relative_to(root).as_posix()
        files, problem = _assign(volumes, cfg)
        if problem is not None:
            problems.append((hashlib.sha256(rel.encode()).hexdigest(), problem, rel))
            continue
        for path in files.values():
            where = f"{root}: case folder file"
            outside += check_inside(root, path.relative_to(root), where, cfg.allow_outside_paths)
        id_map = {"folder": rel, **{role: path.relative_to(root).as_posix() for role, path in files.items()}}
        names = {role: path.name for role, path in files.items()}
        cases.append(
            file_case(files, names, cfg, rel, label="", group=rel, modalities=modalities, id_map=id_map, redact=redact)
        )
    cases.sort(key=lambda case: case.input_key)
    labelled = [
        replace(case, label=f"folder #{n}", names={r: f"folder #{n} {name}" for r, name in case.names.items()})
        for n, case in enumerate(cases)
    ]
    unpaired = [(f"folder #{len(cases) + n}", p, rel) for n, (_, p, rel) in enumerate(sorted(problems))]
    return FolderCases(labelled, unpaired, outside)


def manifest_hint(root: Path) -> str | None:
    """The error for a folder holding volumes but neither DICOM nor a manifest, ``None`` without volumes.

    Args:
        root: The input folder.

    Returns:
        A message: how many volumes were found, and an example ``manifest.json`` built from them.
    """
    found = _walk(root)
    if not found:
        return None
    count = sum(len(v) for v in found.values())
    suffixes = sorted({str(_suffix(p)) for v in found.values() for p in v})
    volumes = next((v for v in found.values() if len(v) > 1), next(iter(found.values())))
    rel = [p.relative_to(root).as_posix() for p in volumes[:2]] + ["<the target volume>"]
    example = {
        "source_modality": "CT",
        "target_modality": "MR",
        "cases": [{"id": "1", "files": {"source": rel[0], "target": rel[1]}}],
    }
    return (
        f"{root}: holds {count} volume file(s) ({', '.join(suffixes)}) but no DICOM series and no {MANIFEST}; "
        f"expected {root / MANIFEST} listing the pairs, one entry per case (paths relative to the folder; an "
        f"optional 'mask' file is used as the body mask), e.g. {json.dumps(example)}; or one folder per case "
        "with files named ct, mr (or cbct) and mask, as in SynthRAD"
    )
