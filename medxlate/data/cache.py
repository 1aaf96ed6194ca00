"""Preprocessed volumes cached on disk once, read lazily (a slice or a patch at a time).

Training no longer holds every volume in RAM. Each case is preprocessed once (canonical grid,
intensity scaling: :func:`medxlate.data.volumes.load_paired_volume`) and written as uncompressed
``.npy`` arrays that later reads memory-map, so a slice or a patch costs only the pages it touches::

    <cache_dir>/cache.json          format marker, key, preprocessing record, the cases once complete
    <cache_dir>/00000/              one folder per case (position in the case list, never a patient id)
        meta.json                   case id, shape, affine, target range, body slices, index counts
        source.npy target.npy       float32, axes (Z, C, X, Y): an axial slice is one contiguous block
        mask.npy                    uint8, (Z, 1, X, Y)
        fg.npy bg.npy               flat (X, Y, Z) indices of body / background voxels (at most
                                    ``MAX_INDICES`` each, evenly strided) for foreground-biased patches
        sample.npy                  the source voxels the training domain's percentiles use

The cache *key* hashes the dataset fingerprint (``fingerprint.json``), ``dataset.json``, the size and
modification time of every file of the cached cases, and the preprocessing record (without the
fields that do not change the arrays: the target reference range, derived from the cache, and the
padding multiple and 2.5D context, applied when items are drawn). A folder built for another dataset or
preprocessing is detected by its key, logged and rebuilt, never silently reused; a folder that is not
a medxlate cache is refused rather than deleted. Cases are written to a temporary folder and renamed,
so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor

from medxlate.data.dataset import DATASET_FILE, Case, Dataset
from medxlate.errors import InputDataError
from medxlate.io.atomic import write_bytes_atomic
from medxlate.transforms import Preprocessing
from medxlate.transforms.domain import intensity_sample

logger = logging.getLogger(__name__)

CACHE_FORMAT = "medxlate-volume-cache"
CACHE_VERSION = 1
INDEX_FILE = "cache.json"
MAX_INDICES = 1 << 18
ROLES = ("source", "target", "mask")
# Preprocessing fields that do not change the cached arrays: the reference range is derived from the
# cache; padding and 2.5D stacking happen when items are drawn. Models of any depth or context share a cache.
UNCACHED_FIELDS = ("target_range", "divisible", "context_slices")


@dataclass(frozen=True)
class CachedCase:
    """One preprocessed case in the cache (arrays stay on disk).

    Attributes:
        case_id: Opaque case identifier.
        folder: Folder holding the case's ``.npy`` arrays.
        shape: Spatial shape (X, Y, Z) on the canonical grid.
        affine: 4x4 voxel-to-RAS affine of the canonical grid.
        target_range: The target's own (low, high) percentile values, in target units.
        body_slices: Axial indices z whose body mask is not empty.
    """

    case_id: str
    folder: Path
    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]
    target_range: tuple[float, float]
    body_slices: tuple[int, ...]

    def path(self, role: str) -> Path:
        """The ``.npy`` file of ``role`` (``source``, ``target``, ``mask``, ``fg``, ``bg``)."""
        return self.folder / f"{role}.npy"


def cache_key(dataset: Dataset, cases: Sequence[Case], prep: Preprocessing) -> str:
    """SHA-256 identifying what a cache holds: dataset fingerprint, index, files and preprocessing."""
    from medxlate.data.fingerprint import fingerprint_hash, load_fingerprint

    fingerprint = load_fingerprint(dataset.root)
    record = _cached_record(prep)
    files = {case.id: {role: _file_stamp(case.files[role]) for role in ROLES if role in case.files} for case in cases}
    content = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "fingerprint": fingerprint_hash(fingerprint) if fingerprint else None,
        "index_sha256": hashlib.sha256((dataset.root / DATASET_FILE).read_bytes()).hexdigest(),
        "cases": [case.id for case in cases],
        "files": files,
        "preprocessing": record,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cached_record(prep: Preprocessing) -> dict[str, Any]:
    return {k: v for k, v in prep.to_dict().items() if k not in UNCACHED_FIELDS}


def _file_stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def build_cache(dataset: Dataset, cases: Sequence[Case], prep: Preprocessing, root: str | Path) -> list[CachedCase]:
    """Make sure ``root`` caches ``cases`` preprocessed with ``prep``; build what is missing.

    Args:
        dataset: The dataset the cases belong to (its fingerprint and index enter the key).
        cases: Cases to cache (e.g. the train and val splits).
        prep: Preprocessing record (``UNCACHED_FIELDS`` are ignored).
        root: Cache folder (created if missing).

    Returns:
        The cached cases, in the order of ``cases``.

    Raises:
        InputDataError: if ``root`` exists, is not empty and is not a medxlate cache (it is never
            deleted), or a case cannot be loaded.
    """
    root = Path(root)
    key = cache_key(dataset, cases, prep)
    index = _read_index(root)
    if index is not None and index.get("key") == key and index.get("complete"):
        return [_read_case(root / folder) for folder in index["folders"]]
    if index is not None and index.get("key") != key:
        logger.warning(
            "data cache %s was built for another dataset or preprocessing (key %s..., expected %s...); rebuilding",
            root,
            str(index.get("key"))[:12],
            key[:12],
        )
        _clear(root)
    root.mkdir(parents=True, exist_ok=True)
    record = _cached_record(prep)
    header = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key, "preprocessing": record}
    _write_json(root / INDEX_FILE, {**header, "complete": False})
    folders = [f"{number:05d}" for number in range(len(cases))]
    cached = []
    for case, folder in zip(cases, folders, strict=True):
        if not (root / folder / "meta.json").is_file():
            _write_case(case, prep, root / folder)
        cached.append(_read_case(root / folder))
    _write_json(root / INDEX_FILE, {**header, "complete": True, "folders": folders})
    logger.info("data cache %s: %d case(s) ready", root, len(cached))
    return cached


def _read_index(root: Path) -> dict[str, Any] | None:
    """The cache index, ``None`` for a missing or empty folder.

    Raises:
        InputDataError: for a non-empty folder that is not a medxlate cache.
    """
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return None
    index_path = root / INDEX_FILE
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputDataError(
            f"data.cache_dir: {root} exists and is not a medxlate data cache (no readable {INDEX_FILE}); "
            "refusing to overwrite it: choose an empty or new folder"
        ) from e
    if not isinstance(index, dict) or index.get("format") != CACHE_FORMAT:
        raise InputDataError(
            f"data.cache_dir: {root}/{INDEX_FILE} is not a medxlate data cache index; refusing to overwrite it"
        )
    if index.get("version") != CACHE_VERSION:
        return {"key": f"version {index.get('version')}"}  # an older layout: rebuilt
    return index


def _clear(root: Path) -> None:
    """Delete what a medxlate cache wrote: its index and its numbered case folders only."""
    for child in root.iterdir():
        if child.is_dir() and (child.name.isdigit() or child.name.startswith(".tmp-")):
            shutil.rmtree(child)
    (root / INDEX_FILE).unlink(missing_ok=True)


def _write_case(case: Case, prep: Preprocessing, folder: Path) -> None:
    """Preprocess one case and write its arrays into ``folder`` (temporary folder, then rename)."""
    from monai.transforms.utils import map_binary_to_indices

    from medxlate.data.volumes import load_paired_volume

    volume = load_paired_volume(case, prep)
    tmp = folder.parent / f".tmp-{folder.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    mask = volume.mask.numpy()  # (1, X, Y, Z) bool
    for role, array in (
        ("source", volume.source.as_tensor().numpy()),
        ("target", volume.target.as_tensor().numpy()),
        ("mask", mask.astype(np.uint8)),
    ):
        np.save(tmp / f"{role}.npy", np.ascontiguousarray(np.moveaxis(array, -1, 0)))  # (Z, C, X, Y)
    fg, bg = map_binary_to_indices(mask)
    counts = {}
    for name, indices in (("fg", np.asarray(fg)), ("bg", np.asarray(bg))):
        stride = max(1, -(-len(indices) // MAX_INDICES))
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(indices[::stride].astype(np.int64)))
        counts[name] = len(indices)
    np.save(tmp / "sample.npy", intensity_sample(volume.source.as_tensor()).numpy())  # for the training domain
    meta = {
        "case_id": case.id,
        "shape": list(mask.shape[1:]),
        "affine": np.asarray(volume.source.affine, dtype=float).tolist(),
        "target_range": [float(v) for v in volume.target_range],
        "body_slices": np.flatnonzero(mask[0].any(axis=(0, 1))).tolist(),
        "voxels": counts,
    }
    (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    tmp.rename(folder)


def _read_case(folder: Path) -> CachedCase:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return CachedCase(
        case_id=str(meta["case_id"]),
        folder=folder,
        shape=tuple(int(v) for v in meta["shape"]),  # type: ignore[arg-type]
        affine=tuple(tuple(float(v) for v in row) for row in meta["affine"]),
        target_range=(float(meta["target_range"][0]), float(meta["target_range"][1])),
        body_slices=tuple(int(z) for z in meta["body_slices"]),
    )


def _write_json(path: Path, content: dict[str, Any]) -> None:
    write_bytes_atomic(path, (json.dumps(content, indent=1) + "\n").encode("utf-8"))


class VolumeReader:
    """Reads regions of cached volumes; keeps at most ``in_memory`` whole volumes in RAM.

    The first ``in_memory`` cases touched are loaded whole and kept (no eviction, so a shuffled
    epoch cannot thrash); every other read memory-maps the file, copies the region and unmaps it,
    so the process holds only what it returns. Each DataLoader worker has its own reader.

    Args:
        cases: Cached cases.
        in_memory: Most whole volumes held in RAM by this reader.
    """

    def __init__(self, cases: Sequence[CachedCase], in_memory: int) -> None:
        self.cases = list(cases)
        self.in_memory = in_memory
        self._held: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {"cases": self.cases, "in_memory": self.in_memory, "_held": OrderedDict()}  # workers start empty

    def region(self, number: int, role: str, z: slice | np.ndarray, x: slice, y: slice) -> np.ndarray:
        """Copy of ``role``'s voxels ``[z, :, x, y]`` of case ``number`` in the (Z, C, X, Y) layout."""
        held = self._held.get(number)
        if held is None and len(self._held) < self.in_memory:
            held = {name: np.load(self.cases[number].path(name)) for name in ROLES}
            self._held[number] = held
        if held is not None:
            return np.array(held[role][z][:, :, x, y])
        mapped = np.load(self.cases[number].path(role), mmap_mode="r")
        try:
            return np.array(mapped[z][:, :, x, y])
        finally:
            del mapped

    def indices(self, number: int, name: str) -> np.ndarray:
        """Memory-mapped flat body (``fg``) or background (``bg``) voxel indices of case ``number``."""
        return np.load(self.cases[number].path(name), mmap_mode="r")


def read_paired_volume(case: CachedCase) -> Any:
    """Load one cached case whole as a :class:`~medxlate.data.volumes.PairedVolume` (for validation)."""
    from medxlate.data.volumes import PairedVolume

    affine = torch.tensor(case.affine, dtype=torch.float64)

    def whole(role: str) -> torch.Tensor:
        return torch.from_numpy(np.moveaxis(np.load(case.path(role)), 0, -1).copy())  # (C, X, Y, Z)

    return PairedVolume(
        case_id=case.case_id,
        source=MetaTensor(whole("source"), affine=affine),
        target=MetaTensor(whole("target"), affine=affine.clone()),
        mask=whole("mask") > 0,
        target_range=case.target_range,
    )


class LazyVolumes(Sequence):
    """A sequence of cached cases that loads each :class:`PairedVolume` only when indexed."""

    def __init__(self, cases: Sequence[CachedCase]) -> None:
        self._cases = list(cases)

    def __len__(self) -> int:
        return len(self._cases)

    def __getitem__(self, item: int) -> Any:  # type: ignore[override]
        return read_paired_volume(self._cases[item])


@dataclass(frozen=True)
class SourceSummary:
    """What the training domain needs of a cached source: its grid and its intensity sample."""

    shape: tuple[int, ...]
    affine: torch.Tensor
    intensity_sample: torch.Tensor


class MappedSources(Sequence):
    """The cached cases' sources as the training domain reads them: shape and affine from
    ``meta.json`` and the intensity sample stored at build time (``sample.npy``, 0.8 MB), so start-up
    does not grow with the size of the cached volumes. Caches written before the sample was stored
    fall back to a strided read of the memory-mapped source (same values)."""

    def __init__(self, cases: Sequence[CachedCase]) -> None:
        self._cases = list(cases)

    def __len__(self) -> int:
        return len(self._cases)

    def __getitem__(self, item: int) -> SourceSummary:  # type: ignore[override]
        case = self._cases[item]
        affine = torch.tensor(case.affine, dtype=torch.float64)
        stored = case.path("sample")
        if stored.is_file():
            sample = torch.from_numpy(np.load(stored))
        else:
            mapped = np.moveaxis(np.load(case.path("source"), mmap_mode="c"), 0, -1)  # (C, X, Y, Z)
            sample = intensity_sample(torch.from_numpy(mapped))
        channels = int(np.load(case.path("source"), mmap_mode="r").shape[1])
        return SourceSummary((channels, *case.shape), affine, sample)
