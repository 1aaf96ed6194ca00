"""NRRD (.nrrd/.nhdr) and MetaImage (.mha/.mhd) reading with SimpleITK.

MONAI's ``ITKReader`` would do this but needs the ``itk`` package, which medxlate does not depend
on; SimpleITK is a dependency and is imported inside the function only (design habit 9).

ITK geometry: ``point = origin + direction @ diag(spacing) @ index`` in LPS millimetres, with index
``(x, y, z)``; ``GetArrayFromImage`` returns the array reversed, ``(z, y, x[, components])``.
RAS = diag(-1, -1, 1) @ LPS, i.e. the first two rows of the affine change sign.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from monai.data.utils import orientation_ras_lps

from medxlate.errors import InputDataError

__all__ = ["SITK_SUFFIXES", "detached_data_file", "itk_affine_ras", "read_sitk_image"]

SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


def detached_data_file(header: Path) -> Path | None:
    """The data file a detached ``.mhd``/``.nhdr`` header names, if it names one that exists.

    The header's ``ElementDataFile`` (MetaImage) or ``data file`` (NRRD) field is read as SimpleITK
    reads it: relative to the header's folder, or absolute. ``LOCAL``, ``LIST`` and file patterns
    name no single file: ``None``.

    Args:
        header: Any image file; only ``.mhd`` and ``.nhdr`` have a detached data file.

    Returns:
        The data file's path (unresolved), or ``None``.
    """
    name = header.name.lower()
    if not name.endswith((".mhd", ".nhdr")):
        return None
    with open(header, "rb") as handle:
        text = handle.read(65536).decode("latin-1")
    field = r"ElementDataFile\s*=" if name.endswith(".mhd") else r"data\s?file\s*:"
    match = re.search(rf"^\s*{field}\s*(.+?)\s*$", text, re.MULTILINE | re.IGNORECASE)
    if match is None:
        return None
    data = header.parent / match.group(1)
    return data if data.is_file() else None


def itk_affine_ras(direction: tuple[float, ...], spacing: tuple[float, ...], origin: tuple[float, ...]) -> np.ndarray:
    """Build the 4x4 RAS affine of an ITK image of dimension 2 or 3.

    A 2D image is embedded as one slice: third axis (0, 0, 1) with 1 mm spacing.

    Args:
        direction: Row-major direction matrix, ``dim*dim`` values (column ``i`` = direction of index ``i``).
        spacing: ``dim`` spacings in mm.
        origin: ``dim`` coordinates of voxel 0 in LPS mm.

    Returns:
        4x4 float64 affine, voxel index (x, y, z) -> RAS mm.
    """
    dim = len(spacing)
    lps = np.eye(4)
    lps[:dim, :dim] = np.asarray(direction, dtype=np.float64).reshape(dim, dim) * np.asarray(spacing)
    lps[:dim, 3] = origin
    return orientation_ras_lps(lps)


def read_sitk_image(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 2D/3D scalar or vector image with SimpleITK.

    Args:
        path: An image file SimpleITK can read.

    Returns:
        ``(array, affine)``: array shaped (C, X, Y, Z) in the file's pixel type (a 2D image gets
        Z = 1), and the 4x4 float64 RAS affine.

    Raises:
        InputDataError: The file cannot be read, or is not a 2D/3D image.
    """
    import SimpleITK as sitk  # heavy optional import, local on purpose

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:  # SimpleITK reports every reading failure as RuntimeError
        first_line = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InputDataError(
            f"cannot read image file {path} with SimpleITK ({first_line}); expected a valid {path.suffix} image"
        ) from e
    dim = image.GetDimension()
    if dim not in (2, 3):
        raise InputDataError(f"image file {path} has {dim} spatial dimensions; expected a 2D or 3D image")
    array = sitk.GetArrayFromImage(image)  # (z, y, x) or (y, x), plus a trailing component axis
    if image.GetNumberOfComponentsPerPixel() == 1:
        array = array[..., None]
    array = np.moveaxis(array, -1, 0)  # (C, [z,] y, x)
    array = np.ascontiguousarray(array.transpose(0, *range(array.ndim - 1, 0, -1)))  # (C, x, y[, z])
    if dim == 2:
        array = array[..., None]
    affine = itk_affine_ras(image.GetDirection(), image.GetSpacing(), image.GetOrigin())
    return array, affine
