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
from medxlate.io.dicom import DicomVolume, read_dicom_file, read_dicom_folder
from medxlate.io.sitk_formats import SITK_SUFFIXES, read_sitk_image

__all__ = ["NIFTI_SUFFIXES", "load_volume"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
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


def _as_metatensor(array: np.ndarray, affine: np.ndarray, extra: dict[str, Any]) -> MetaTensor:
    """Wrap a (C, X, Y, Z) array the way ``LoadImage`` would."""
    meta: dict[str, Any] = {
        MetaKeys.ORIGINAL_AFFINE: affine.copy(),
        MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape[1:]),
        MetaKeys.SPACE: SpaceKeys.RAS,
        MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan") if array.shape[0] == 1 else 0,
        **extra,
    }
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(array)), affine=torch.as_tensor(affine), meta=meta)


def _load_dicom(volume: DicomVolume) -> MetaTensor:
    return _as_metatensor(volume.array[None], volume.affine, volume.meta)


def _is_dicom_file(path: Path) -> bool:
    from pydicom.misc import is_dicom

    try:
        return bool(is_dicom(path))
    except OSError:
        return False


def load_volume(path: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32) -> MetaTensor:
    """Load a medical image as a channel-first ``MetaTensor`` in physical units and RAS geometry.

    Args:
        path: A NIfTI (``.nii``/``.nii.gz``), NRRD (``.nrrd``/``.nhdr``) or MetaImage (``.mha``/``.mhd``)
            file, a folder holding exactly one DICOM series, or a single DICOM file.
        dtype: Data type of the returned tensor.

    Returns:
        ``MetaTensor`` shaped (C, X, Y, Z) (C = 1 for scalar images; a 2D image has Z = 1). Values are
        physical (CT in HU: RescaleSlope/Intercept applied; NIfTI scl_slope/scl_inter applied).
        ``.affine`` is a 4x4 float64 tensor, voxel index -> RAS mm. ``meta`` holds
        ``filename_or_obj``, ``spacing`` (mm, numpy) and, for DICOM, ``modality``,
        ``series_description`` and ``photometric_interpretation`` (MONOCHROME1 is *not* inverted here).

    Raises:
        InputDataError: Missing path, unsupported or unreadable file, a folder with no or several
            DICOM series.
        GeometryError: A DICOM series whose slices do not form a regular grid.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputDataError(f"image path {path} does not exist; {_EXPECTED}")
    suffix = _suffix(path)
    if path.is_dir():
        img = _load_dicom(read_dicom_folder(path))
    elif suffix in NIFTI_SUFFIXES:
        img = _load_nifti(path)
    elif suffix in SITK_SUFFIXES:
        array, affine = read_sitk_image(path)
        img = _as_metatensor(array, affine, {})
    elif _is_dicom_file(path):
        img = _load_dicom(read_dicom_file(path))
    else:
        raise InputDataError(f"cannot load {path}: found a file with suffix '{suffix}' that is not DICOM; {_EXPECTED}")
    img = img.to(dtype)
    img.meta[ImageMetaKey.FILENAME_OR_OBJ] = str(path)
    img.meta["spacing"] = np.asarray(affine_to_spacing(img.affine.numpy(), r=3), dtype=np.float64)
    return img
