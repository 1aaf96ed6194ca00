"""``load_volume``: one entry point for NIfTI, NRRD, MetaImage, DICOM series and single DICOM files.

Every format comes back the same way: a ``MetaTensor`` shaped (C, X, Y, Z), physical units, and
``.affine`` mapping voxel index -> RAS world millimetres (MONAI's convention).

Readers: NIfTI goes through MONAI's ``LoadImage`` + ``NibabelReader``; NRRD/MetaImage through
SimpleITK (:mod:`medxlate.io.sitk_formats`); DICOM through :mod:`medxlate.io.dicom` (pydicom),
because MONAI's ``PydicomReader`` sorts slices by InstanceNumber (see that module's docstring).
"""

from __future__ import annotations

import functools
import os
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import affine_to_spacing
from monai.utils import ImageMetaKey, MetaKeys, SpaceKeys

from medxlate.errors import InputDataError
from medxlate.io.dicom import DicomVolume, OnIrregular, OnTilt, read_dicom_file, read_dicom_folder, read_series
from medxlate.io.scan import SeriesInfo, scan_dicom
from medxlate.io.sitk_formats import SITK_SUFFIXES, read_sitk_image

__all__ = ["NIFTI_SUFFIXES", "VOLUME_SUFFIXES", "load_series", "load_volume"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: Single-volume file formats (a DICOM series is a folder or a tree instead).
VOLUME_SUFFIXES = NIFTI_SUFFIXES + SITK_SUFFIXES
_EXPECTED = (
    "expected a NIfTI (.nii/.nii.gz), NRRD (.nrrd/.nhdr) or MetaImage (.mha/.mhd) file, "
    "a DICOM file, or a folder holding one DICOM series"
)


def _suffix(path: Path) -> str:
    """Lower-case suffix, with ``.nii.gz`` kept whole."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


@functools.lru_cache(maxsize=1)
def _nifti_loader() -> Any:
    from monai.data import NibabelReader
    from monai.transforms import LoadImage

    with warnings.catch_warnings():  # LoadImage registers every reader; some complain about GPU codecs
        warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
        warnings.filterwarnings("ignore", message=".*NvImgCodec.*")
        loader = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)
    # squeeze_non_spatial_dims: a 5D vector NIfTI (X, Y, Z, 1, C) loads as (C, X, Y, Z)
    return loader, NibabelReader(squeeze_non_spatial_dims=True)


def _load_nifti(path: Path) -> MetaTensor:
    import nibabel as nib

    loader, reader = _nifti_loader()
    try:
        img = loader(path, reader=reader)  # runtime reader: no silent fallback to other readers
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as e:
        raise InputDataError(
            f"cannot read NIfTI file {path}: {type(e).__name__}: {e}; expected a valid NIfTI-1/2 image"
        ) from e
    if img.ndim == 3:  # (C, X, Y): a 2D image becomes one slice
        img = img.unsqueeze(-1)
    if img.ndim != 4:
        raise InputDataError(f"NIfTI file {path} loaded with shape {tuple(img.shape)}; expected (C, X, Y, Z)")
    return img


def _as_metatensor(array: np.ndarray, affine: np.ndarray, extra: dict[str, Any], *, copy: bool = True) -> MetaTensor:
    """Wrap a (C, X, Y, Z) array the way ``LoadImage`` would (C-contiguous unless ``copy=False``)."""
    meta: dict[str, Any] = {
        MetaKeys.ORIGINAL_AFFINE: affine.copy(),
        MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape[1:]),
        MetaKeys.SPACE: SpaceKeys.RAS,
        MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if array.shape[0] == 1 else 0,
        **extra,
    }
    if copy or array.shape[0] != 1:
        data = torch.from_numpy(np.ascontiguousarray(array))
    else:  # a view; unsqueeze gives the channel axis a regular stride
        data = torch.from_numpy(array[0]).unsqueeze(0)
    return MetaTensor(data, affine=torch.as_tensor(affine), meta=meta)


def _load_dicom(volume: DicomVolume) -> MetaTensor:
    """Wrap without copying: the (X, Y, Z) array keeps DICOM's memory order (x fastest, like ITK).

    Making it C-contiguous would transpose the whole volume in memory, which took longer than
    reading a 200-slice 512x512 series (see ``benchmarks/dicom_io.py``); torch and MONAI handle the
    strides, and ``.contiguous()`` is there for code that needs C order.
    """
    return _as_metatensor(volume.array[None], volume.affine, volume.meta, copy=False)


def _numpy_float(dtype: torch.dtype) -> type[np.floating[Any]]:
    """The float type to decode DICOM pixels into before conversion to ``dtype``."""
    return np.float64 if dtype in (torch.float64, torch.int32, torch.int64) else np.float32


def _finish(img: MetaTensor, dtype: torch.dtype, source: Path) -> MetaTensor:
    img = img.to(dtype)
    img.meta[ImageMetaKey.FILENAME_OR_OBJ] = str(source)
    img.meta["spacing"] = np.asarray(affine_to_spacing(img.affine.numpy(), r=3), dtype=np.float64)
    return img


def load_series(
    info: SeriesInfo,
    *,
    on_irregular: OnIrregular = "error",
    on_tilt: OnTilt = "error",
    dtype: torch.dtype = torch.float32,
) -> MetaTensor:
    """Load a series found by :func:`medxlate.io.scan_dicom` (its files only; no rescan of the tree).

    Args:
        info: One of ``scan_dicom(root).series``.
        on_irregular: Gaps, uneven spacing or duplicate positions: ``"error"`` (default) raises a
            ``GeometryError`` saying what was found; ``"resample"`` interpolates linearly along the
            slice normal onto equally spaced slices (identical duplicates dropped), with a warning.
        on_tilt: Gantry tilt: ``"error"`` (default) or ``"resample"`` onto an orthogonal grid.
        dtype: Data type of the returned tensor.

    Returns:
        ``MetaTensor`` shaped (1, X, Y, Z), as :func:`load_volume` returns for a DICOM folder;
        ``filename_or_obj`` is the folder holding the series' files.

    Raises:
        InputDataError: Files missing or changed since the scan, no images, unsupported layout.
        GeometryError: Irregular or tilted slices not to be resampled, inconsistent geometry.
    """
    from medxlate.io.scan import read_headers

    headers, problems = read_headers(list(info.files))
    changed = [h.path for h in headers if h.series_uid != info.series_uid]
    if problems or changed:
        shown = "; ".join(
            [f"{p.path}: {p.problem}" for p in problems[:3]] + [f"{p}: another series" for p in changed[:3]]
        )
        raise InputDataError(
            f"DICOM series '{info.description}' ({info.modality}): {len(problems) + len(changed)} of "
            f"{len(info.files)} files cannot be used ({shown}); expected the files found by scan_dicom, unchanged"
        )
    volume = read_series(headers, on_irregular=on_irregular, on_tilt=on_tilt, dtype=_numpy_float(dtype))
    folder = Path(os.path.commonpath([str(p.parent) for p in info.files]))
    return _finish(_load_dicom(volume), dtype, folder)


def _load_dicom_folder(
    path: Path, series_uid: str | None, on_irregular: OnIrregular, on_tilt: OnTilt, dtype: torch.dtype
) -> MetaTensor:
    if series_uid is None:
        volume = read_dicom_folder(path, on_irregular=on_irregular, on_tilt=on_tilt, dtype=_numpy_float(dtype))
        return _load_dicom(volume)
    result = scan_dicom(path)
    matches = [s for s in result.series if s.series_uid == series_uid]
    if not matches:
        found = "; ".join(f"'{s.description}' ({s.modality}, {s.n_instances} files)" for s in result.series[:10])
        raise InputDataError(
            f"no DICOM series with the given series_uid under {path}: found {len(result.series)} series ({found}); "
            "expected the SeriesInstanceUID of one of them (see scan_dicom)"
        )
    return load_series(matches[0], on_irregular=on_irregular, on_tilt=on_tilt, dtype=dtype)


def _is_dicom_file(path: Path) -> bool:
    from pydicom.misc import is_dicom

    try:
        return bool(is_dicom(path))
    except OSError:
        return False


def load_volume(
    path: str | os.PathLike[str],
    *,
    dtype: torch.dtype = torch.float32,
    series_uid: str | None = None,
    on_irregular: OnIrregular = "error",
    on_tilt: OnTilt = "error",
) -> MetaTensor:
    """Load a medical image as a channel-first ``MetaTensor`` in physical units and RAS geometry.

    Args:
        path: A NIfTI (``.nii``/``.nii.gz``), NRRD (``.nrrd``/``.nhdr``) or MetaImage (``.mha``/``.mhd``)
            file, a folder holding exactly one DICOM series, a folder tree holding the series
            ``series_uid``, or a single DICOM file (one image, or an enhanced multi-frame volume).
        dtype: Data type of the returned tensor.
        series_uid: DICOM only: load this SeriesInstanceUID from anywhere under the folder
            ``path`` (scanned recursively with :func:`medxlate.io.scan_dicom`).
        on_irregular: DICOM only: gaps, uneven spacing or duplicate positions raise a
            ``GeometryError`` (``"error"``, default) or are resampled linearly along the slice
            normal onto equally spaced slices (``"resample"``, with a warning).
        on_tilt: DICOM only: a gantry tilt raises (``"error"``, default) or is resampled onto an
            orthogonal grid, world coordinates preserved (``"resample"``, with a warning).

    Returns:
        ``MetaTensor`` shaped (C, X, Y, Z) (C = 1 for scalar images; a 2D image has Z = 1). Values are
        physical (CT in HU: RescaleSlope/Intercept applied per slice; NIfTI scl_slope/scl_inter
        applied; DICOM MONOCHROME1 inverted to MONOCHROME2, see :mod:`medxlate.io.dicom_pixels`).
        ``.affine`` is a 4x4 float64 tensor, voxel index -> RAS mm. ``meta`` holds
        ``filename_or_obj``, ``spacing`` (mm, numpy) and, for DICOM, ``modality``,
        ``series_description``, ``photometric_interpretation`` (as stored), ``monochrome1_inverted``
        and ``resampled`` ("" when the slices were used as they are). DICOM volumes keep DICOM's
        memory order (x fastest, as ITK): a strided view, not C-contiguous; ``.contiguous()`` copies.

    Raises:
        InputDataError: Missing path, unsupported or unreadable file, a folder with no or several
            DICOM series, an unknown ``series_uid``, an unsupported DICOM layout (e.g. mosaic).
        GeometryError: A DICOM series whose slices do not form a regular grid (and no resampling
            was asked for), or that cannot be stacked at all.
        ConfigError: ``on_irregular``/``on_tilt`` not ``"error"`` or ``"resample"``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputDataError(f"image path {path} does not exist; {_EXPECTED}")
    suffix = _suffix(path)
    if path.is_dir():
        img = _load_dicom_folder(path, series_uid, on_irregular, on_tilt, dtype)
    elif suffix in NIFTI_SUFFIXES:
        img = _load_nifti(path)
    elif suffix in SITK_SUFFIXES:
        array, affine = read_sitk_image(path)
        img = _as_metatensor(array, affine, {})
    elif _is_dicom_file(path):
        volume = read_dicom_file(path, on_irregular=on_irregular, on_tilt=on_tilt, dtype=_numpy_float(dtype))
        img = _load_dicom(volume)
    else:
        raise InputDataError(f"cannot load {path}: found a file with suffix '{suffix}' that is not DICOM; {_EXPECTED}")
    if series_uid is not None and not path.is_dir() and not (_is_dicom_file(path) and _same_series(path, series_uid)):
        raise InputDataError(f"{path} is not a DICOM file of the series given by series_uid; expected a file of it")
    return _finish(img, dtype, path)


def _same_series(path: Path, series_uid: str) -> bool:
    from medxlate.io.dicom_header import read_header

    return read_header(path).series_uid == series_uid
