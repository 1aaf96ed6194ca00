"""``save_volume`` (NIfTI writer) and ``write_provenance`` (JSON sidecar), both atomic.

Header choices, so outputs open correctly in 3D Slicer, ITK-SNAP and nibabel/MONAI:

* sform and qform both hold the image affine, both with code 1 (``scanner``): our affines come
  from scanner coordinates (DICOM patient space) and a translated volume keeps its source's affine,
  so "scanner anatomical" is the truthful code. Readers disagree on which of the two forms wins, so
  both are written identically. A sheared affine (e.g. DICOM with gantry tilt) cannot be a qform;
  then qform_code is 0 and readers use the sform.
* ``xyzt_units``: millimetres, time unknown.
* (C, X, Y, Z) with C == 1 is written 3D (X, Y, Z); C > 1 as 4D (X, Y, Z, C), the layout MONAI's
  ``LoadImage(ensure_channel_first=True)`` reads back as channels (5D vector NIfTI is read too).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.data import MetaTensor
from monai.utils import MetaKeys, SpaceKeys

from medxlate.errors import GeometryError, InputDataError
from medxlate.io.atomic import atomic_path, write_bytes_atomic

__all__ = ["save_volume", "sidecar_path", "write_provenance"]

_NIFTI_CODE_SCANNER = 1
_DESCRIP_MAX_BYTES = 79  # char[80], NUL-terminated for C readers (nifti1_io copies 79 bytes)
_WRITABLE = tuple(
    np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64)
)
# Keys that would carry patient/study identifiers into a sidecar (compared without case/punctuation).
_IDENTIFIER_KEYS = frozenset(
    {"patientname", "patientid", "patientbirthdate", "accessionnumber", "otherpatientids"}
    | {"studyinstanceuid", "seriesinstanceuid", "sopinstanceuid", "frameofreferenceuid"}
)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _check_affine(affine: Any, path: Path) -> np.ndarray:
    arr = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64)
    if arr.shape == (3, 3):  # 2D affine of a (C, X, Y) image: embed, third axis 1 mm along z
        arr = np.block(
            [
                [arr[:2, :2], np.zeros((2, 1)), arr[:2, 2:]],
                [np.zeros((1, 2)), np.ones((1, 1)), np.zeros((1, 1))],
                [arr[2:, :2], np.zeros((1, 1)), arr[2:, 2:]],
            ]
        )
    if arr.shape != (4, 4) or not np.isfinite(arr).all() or not np.allclose(arr[3], [0, 0, 0, 1]):
        raise GeometryError(f"cannot save {path}: affine {arr.tolist()} is not a finite 4x4 homogeneous matrix")
    if abs(np.linalg.det(arr[:3, :3])) < 1e-12:
        raise GeometryError(f"cannot save {path}: affine {arr.tolist()} is singular; expected voxel -> mm mapping")
    return arr


def _data_and_affine(img: Any, affine: Any, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (data (C, X, Y, Z) numpy, RAS affine 4x4) from a MetaTensor, tensor or array."""
    if isinstance(img, MetaTensor):
        if img.is_batch:
            raise GeometryError(f"cannot save {path}: got a batched MetaTensor; expected one image (C, X, Y, Z)")
        own = _check_affine(img.affine, path)
        if str(img.meta.get(MetaKeys.SPACE, SpaceKeys.RAS)) == str(SpaceKeys.LPS):
            own = np.diag([-1.0, -1.0, 1.0, 1.0]) @ own  # NIfTI is RAS
        if affine is not None and not np.allclose(_check_affine(affine, path), own):
            raise GeometryError(
                f"cannot save {path}: the MetaTensor carries an affine and a different `affine` was passed; "
                "expected one source of geometry"
            )
        affine, tensor = own, img.as_tensor()
    elif isinstance(img, (torch.Tensor, np.ndarray)):
        if affine is None:
            raise GeometryError(
                f"cannot save {path}: got a plain {type(img).__name__} without `affine`; "
                "expected a MetaTensor or an explicit 4x4 voxel -> RAS mm affine"
            )
        affine, tensor = _check_affine(affine, path), img
    else:
        raise InputDataError(f"cannot save {path}: got {type(img).__name__}; expected MetaTensor, Tensor or ndarray")
    if isinstance(tensor, torch.Tensor):
        tensor = tensor.detach().cpu()
        tensor = tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
        data = tensor.numpy()
    else:
        data = np.asarray(tensor)
    if data.ndim == 3:  # (C, X, Y) -> (C, X, Y, 1)
        data = data[..., None]
    if data.ndim != 4 or 0 in data.shape:
        raise GeometryError(f"cannot save {path}: data shape {data.shape}; expected (C, X, Y, Z) or (C, X, Y)")
    return data, affine


def _output_dtype(data: np.ndarray, requested: npt.DTypeLike | torch.dtype | None, path: Path) -> np.dtype:
    if requested is None:
        if data.dtype.kind == "f":
            return np.dtype(np.float32)
        if data.dtype.kind == "b":
            return np.dtype(np.uint8)
        lo, hi = int(data.min()), int(data.max())
        for candidate in _WRITABLE[:6]:  # integer types, smallest first
            if np.iinfo(candidate).min <= lo and hi <= np.iinfo(candidate).max:
                return candidate
        raise InputDataError(
            f"cannot save {path}: integer values span [{lo}, {hi}], beyond int32/uint32; pass dtype=np.float64"
        )
    try:
        dt = (
            torch.empty(0, dtype=requested).numpy().dtype if isinstance(requested, torch.dtype) else np.dtype(requested)
        )
    except (TypeError, RuntimeError) as e:
        raise InputDataError(f"cannot save {path}: dtype={requested!r} is not a data type") from e
    if dt not in _WRITABLE:
        raise InputDataError(f"cannot save {path}: dtype={dt}; expected one of {[str(d) for d in _WRITABLE]}")
    return dt


def _cast(data: np.ndarray, dtype: np.dtype, path: Path) -> np.ndarray:
    """Round (half to even) and clip into an integer ``dtype``; plain cast for floats."""
    if dtype.kind == "f":
        return data.astype(dtype, copy=False)
    if data.dtype.kind == "f":
        bad = int((~np.isfinite(data)).sum())
        if bad:
            raise InputDataError(f"cannot save {path} as {dtype}: {bad} voxels are NaN/inf; expected finite values")
        data = np.rint(data)
    info = np.iinfo(dtype)
    return np.clip(data, info.min, info.max).astype(dtype)


def _descrip(text: str | None) -> bytes:
    """At most 79 UTF-8 bytes, never cutting a character in half."""
    raw = (text or "").replace("\0", " ").encode("utf-8")[:_DESCRIP_MAX_BYTES]
    return raw.decode("utf-8", errors="ignore").encode("utf-8")


def _is_orthogonal(affine: np.ndarray) -> bool:
    m = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return bool(np.allclose(m.T @ m, np.eye(3), atol=1e-6))


def save_volume(
    img: MetaTensor | torch.Tensor | np.ndarray,
    path: str | os.PathLike[str],
    *,
    affine: npt.ArrayLike | torch.Tensor | None = None,
    description: str | None = None,
    dtype: npt.DTypeLike | torch.dtype | None = None,
) -> Path:
    """Write an image as NIfTI with its geometry, atomically.

    Args:
        img: Image shaped (C, X, Y, Z) (or (C, X, Y) for 2D). A ``MetaTensor`` brings its own affine
            (converted to RAS if its ``meta["space"]`` is LPS); a plain tensor/array needs ``affine``.
        path: Destination ending in ``.nii`` or ``.nii.gz``; parent folders are created.
        affine: 4x4 voxel -> RAS mm affine for a plain tensor/array. For a MetaTensor it may only
            repeat the MetaTensor's own affine.
        description: Header ``descrip`` (e.g. "SYNTHETIC MR from CT, medxlate 0.1.0"); truncated
            to 79 UTF-8 bytes.
        dtype: Stored type (uint8, int8, uint16, int16, uint32, int32, float32, float64; numpy or
            torch). Integer types round half to even and clip to the type's range. Default:
            float32 for floating data, bool -> uint8, integers -> the smallest type holding them.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        InputDataError: Wrong suffix, unsupported ``dtype``, NaN/inf written as integers, or an
            unsupported ``img`` type.
        GeometryError: Missing, malformed, singular or conflicting affine; wrong data shape.
    """
    import nibabel as nib

    path = Path(path).expanduser()
    suffix = _suffix(path)
    if suffix not in (".nii", ".nii.gz"):
        raise InputDataError(f"cannot save {path}: suffix '{suffix}'; expected .nii or .nii.gz (NIfTI)")
    data, ras = _data_and_affine(img, affine, path)
    out_dtype = _output_dtype(data, dtype, path)
    data = _cast(data, out_dtype, path)
    array = data[0] if data.shape[0] == 1 else np.moveaxis(data, 0, -1)  # (X, Y, Z) or (X, Y, Z, C)
    nii = nib.Nifti1Image(array, ras)
    nii.header.set_data_dtype(out_dtype)  # data already cast: nibabel stores it unscaled
    nii.set_sform(ras, code=_NIFTI_CODE_SCANNER)
    if _is_orthogonal(ras):
        nii.set_qform(ras, code=_NIFTI_CODE_SCANNER)
    else:
        nii.set_qform(None, code=0)  # a qform cannot hold shear; readers fall back to the sform
    nii.header.set_xyzt_units(xyz="mm", t="unknown")
    nii.header["descrip"] = _descrip(description)
    with atomic_path(path, suffix) as tmp:
        nib.save(nii, tmp)
    return path


def sidecar_path(image_path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of an image: ``out.nii.gz`` -> ``out.json``, ``out.nrrd`` -> ``out.json``.

    Args:
        image_path: Path of the image.

    Returns:
        Path of the sidecar, in the same folder.
    """
    path = Path(image_path)
    stem = path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem
    return path.with_name(f"{stem}.json")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _identifier_keys(obj: Any, where: str = "") -> list[str]:
    if isinstance(obj, Mapping):
        found = []
        for key, value in obj.items():
            if re.sub(r"[^a-z]", "", str(key).lower()) in _IDENTIFIER_KEYS:
                found.append(f"{where}{key}")
            found += _identifier_keys(value, f"{where}{key}.")
        return found
    if isinstance(obj, (list, tuple)):
        return [k for item in obj for k in _identifier_keys(item, where)]
    return []


def write_provenance(
    path: str | os.PathLike[str], info: Mapping[str, Any], *, allow_identifiers: Collection[str] = ()
) -> Path:
    """Write ``info`` as a JSON sidecar next to an image, atomically.

    Args:
        path: The image path (``out.nii.gz``); the sidecar is ``out.json`` (see :func:`sidecar_path`).
        info: JSON-serialisable mapping (numpy/torch values and paths are converted), e.g. model run,
            input checksum, medxlate version. Keys naming patient/study identifiers are refused.
        allow_identifiers: Dotted keys that may hold an identifier anyway, for sidecars that stay in
            the hospital (``translate`` records ``source.series_instance_uid``); never used for
            prepared datasets or anything sent to MLflow.

    Returns:
        Path of the written sidecar.

    Raises:
        InputDataError: ``info`` is not serialisable (including NaN/inf) or holds identifier keys.
    """
    target = sidecar_path(Path(path).expanduser())
    leaked = [key for key in _identifier_keys(info) if key not in allow_identifiers]
    if leaked:
        raise InputDataError(
            f"provenance for {target} has identifier keys {leaked}; expected no patient/study identifiers"
        )
    try:
        text = json.dumps(info, indent=2, sort_keys=True, allow_nan=False, default=_jsonable)
    except (TypeError, ValueError) as e:
        raise InputDataError(f"provenance for {target} is not JSON-serialisable: {e}; expected JSON values") from e
    write_bytes_atomic(target, (text + "\n").encode("utf-8"))
    return target
