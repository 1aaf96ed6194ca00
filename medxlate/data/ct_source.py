"""The CT volumes X-ray -> CT trains and is evaluated on: a prepared dataset or a folder of CTs.

One code path for both: :func:`read_ct_source` turns either into a :class:`CtSource`, whose splits
hold :class:`CtCase` records (an opaque id, how to load the CT and its body mask, a content key for
the model-grid cache of :func:`medxlate.data.drr.build_grid_cache`, and how messages name it).

* A prepared dataset (``dataset.json``): its CT role (whichever role holds CT) and body mask, its
  own splits; the content key is the index's SHA-256 (it lists every file's checksum) with the case
  id and role, so the cache is rebuilt whenever the index changes.
* A folder of CT volumes (NIfTI/NRRD/MetaImage files, or a DICOM tree): see
  :mod:`medxlate.data.ct_folder` (ids ``ct_000``..., seeded train/val split, body mask from the CT).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monai.data import MetaTensor

from medxlate.data.dataset import DATASET_FILE, Case, Dataset, read_dataset
from medxlate.errors import InputDataError

__all__ = ["CtCase", "CtSource", "ct_cases", "read_ct_source"]

#: A case's loader: ``(CT in HU (1, X, Y, Z), body mask (1, X', Y', Z') or None)``, each with its affine.
CtLoader = Callable[[], tuple[MetaTensor, MetaTensor | None]]


@dataclass(frozen=True)
class CtCase:
    """One CT as X-ray -> CT uses it.

    Attributes:
        id: Opaque case id (``case_000`` of a prepared dataset, ``ct_000`` of a folder).
        label: How messages name the case: the CT file, or for a DICOM series the folder given
            and the case id (never a UID or a patient's folder name).
        key: Content key of the CT and its mask: equal keys mean the same grid-cache entry.
        loader: Loads the CT in HU and its body mask (``None``: the case has none).
    """

    id: str
    label: str
    key: str
    loader: CtLoader = field(repr=False, compare=False)

    def load(self) -> tuple[MetaTensor, MetaTensor | None]:
        """The CT (HU) and its body mask (``None`` when the case has none), each with its affine."""
        return self.loader()


@dataclass(frozen=True)
class CtSource:
    """The CT cases of a prepared dataset or a CT folder, by split.

    Attributes:
        root: The dataset or folder.
        name: Dataset name (a folder: its name).
        digest: SHA-256 identifying the content (recorded with the training run).
        splits: Split name -> cases (``train``/``val``, plus ``test`` for a prepared dataset).
    """

    root: Path
    name: str
    digest: str
    splits: Mapping[str, tuple[CtCase, ...]]

    def split(self, name: str) -> list[CtCase]:
        """The cases of one split (empty if it has none)."""
        return list(self.splits.get(name, ()))


def read_ct_source(
    path: str | Path, val_fraction: float = 0.2, split_seed: int = 0, digest_memo: Path | None = None
) -> CtSource:
    """The CT cases at ``path``: a prepared dataset (its splits) or a folder of CT volumes.

    Args:
        path: A prepared dataset (folder with ``dataset.json``, or the file itself), a folder of
            NIfTI/NRRD/MetaImage CT files, or a DICOM tree.
        val_fraction: Folders only: the share of volumes for validation (:mod:`medxlate.data.ct_folder`).
        split_seed: Folders only: seed of the train/val assignment.
        digest_memo: Folders only: a JSON file remembering each volume file's SHA-256 by size and
            mtime, so an unchanged folder is not re-read (``None``: hash every file).

    Returns:
        The cases by split.

    Raises:
        InputDataError: if ``path`` is no folder, the dataset holds no CT role, or the folder holds
            no CT volume or fewer than two.
    """
    root = Path(path)
    if root.name == DATASET_FILE or (root / DATASET_FILE).is_file():
        dataset = read_dataset(root)
        splits = {name: tuple(ct_cases(dataset, name)) for name in ("train", "val", "test")}
        digest = _index_digest(dataset.root)
        return CtSource(dataset.root, dataset.name, digest, splits)
    from medxlate.data.ct_folder import read_ct_folder

    return read_ct_folder(root, val_fraction, split_seed, digest_memo)


def ct_cases(dataset: Dataset, split: str) -> list[CtCase]:
    """The split's cases with the dataset role that holds CT (and the body mask).

    Raises:
        InputDataError: if neither role of the dataset is CT.
    """
    modalities = (dataset.source_modality.upper(), dataset.target_modality.upper())
    if "CT" not in modalities:
        raise InputDataError(
            f"{dataset.root}: X-ray -> CT trains on CT volumes; this dataset holds {modalities[0]} and {modalities[1]}"
        )
    role = "source" if modalities[0] == "CT" else "target"
    index = _index_digest(dataset.root)
    return [_prepared_case(case, role, index) for case in dataset.split(split)]


def _prepared_case(case: Case, role: str, index: str) -> CtCase:
    ct, mask = case.files[role], case.mask

    def load() -> tuple[MetaTensor, MetaTensor | None]:
        from medxlate.io import load_volume

        return load_volume(ct), (load_volume(mask) if mask is not None else None)

    return CtCase(case.id, str(ct), f"dataset:{index}:{case.id}:{role}", load)


def _index_digest(root: Path) -> str:
    """SHA-256 of a prepared dataset's index (``dataset.json``)."""
    return hashlib.sha256((root / DATASET_FILE).read_bytes()).hexdigest()
