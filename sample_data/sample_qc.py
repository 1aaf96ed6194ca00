"""Quality checks of the generated sample data (used by ``make_sample_data.py``).

* reference ROIs: small world-space boxes well inside homogeneous tissues (liver, spleen, muscle,
  fat, lung, aorta), with the mean HU and MR signal measured at the ORIGINAL resolution; the tests
  re-measure them on the shipped files through the affine, which checks intensities and geometry;
* mean CT / MR per major tissue on the output grid (interior voxels only);
* the noise-free-vs-noisy MR metrics on each slab: the ceiling any CT->MR model can reach.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from resample_area import resample_inplane
from scipy import ndimage as ndi
from skimage.metrics import structural_similarity

if TYPE_CHECKING:
    from make_sample_data import Source, Volumes

ROI_HALF_MM = 5.0  # in-plane half size of a reference box
ROI_HALF_SLICES = 1  # the box spans 3 slices
ROI_TISSUES = ("liver", "spleen", "muscle", "fat", "lung", "aorta")
INTERIOR_FRACTION = 0.9


def _ids(src: Source, *names: str) -> list[int]:
    return [i for i, s in src.structures.items() if s in names]


def tissue_regions(src: Source, vols: Volumes) -> dict[str, np.ndarray]:
    """Boolean masks (source grid) of the major tissues, from labels and denoised HU."""
    lab, hu = src.labels, vols.hu_smooth
    lung_ids = [i for i, s in src.structures.items() if s.startswith("lung_")]
    bone_ids = [i for i, s in src.structures.items() if s.startswith(("vertebrae_", "rib_", "sternum"))]
    return {
        "fat": (lab == 0) & vols.body & (hu > -150) & (hu < -70),
        "muscle": np.isin(lab, _ids(src, "autochthon_left", "autochthon_right")) & (hu > 0),
        "liver": np.isin(lab, _ids(src, "liver")),
        "spleen": np.isin(lab, _ids(src, "spleen")),
        "kidney": np.isin(lab, _ids(src, "kidney_left", "kidney_right")),
        "pancreas": np.isin(lab, _ids(src, "pancreas")),
        "lung": np.isin(lab, lung_ids) & (hu < -700),
        "heart": np.isin(lab, _ids(src, "heart")),
        "aorta": np.isin(lab, _ids(src, "aorta")),
        "spinal_cord": np.isin(lab, _ids(src, "spinal_cord")),
        "bone_marrow": np.isin(lab, bone_ids) & (hu > 50) & (hu < 200),
        "cortical_bone": np.isin(lab, bone_ids) & (hu > 800),
    }


def box_slices(affine: np.ndarray, lo: np.ndarray, hi: np.ndarray, whole_voxels: bool) -> tuple[slice, ...]:
    """Index slices of the voxels inside a world box (diagonal affines only).

    ``whole_voxels``: the voxel's whole footprint must lie inside, else only its centre.
    """
    corners = np.linalg.inv(affine) @ np.array([[*lo, 1.0], [*hi, 1.0]]).T
    a, b = np.minimum(corners[:3, 0], corners[:3, 1]), np.maximum(corners[:3, 0], corners[:3, 1])
    pad = 0.5 if whole_voxels else 0.0
    first, last = np.ceil(a + pad).astype(int), np.floor(b - pad).astype(int)
    return tuple(slice(int(f), int(t) + 1) for f, t in zip(first, last, strict=True))


def find_roi(region: np.ndarray, spacing: np.ndarray, cases: list[dict]) -> tuple[str, tuple[int, int, int]]:
    """Case and source voxel deepest inside ``region`` whose 3-slice box stays within one slab."""
    found = ndi.find_objects(region.astype(np.uint8))
    if not found:
        raise ValueError("find_roi: empty region")
    box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in found[0])
    dist = ndi.distance_transform_edt(np.pad(region[box], 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    best: tuple[float, str, tuple[int, int, int]] = (-1.0, "", (0, 0, 0))
    for case in cases:
        first, last = case["source_slices"]
        k_lo = max(first + ROI_HALF_SLICES, box[2].start) - box[2].start
        k_hi = min(last - ROI_HALF_SLICES, box[2].stop - 1) - box[2].start
        if k_hi < k_lo:
            continue
        sub = dist[:, :, k_lo : k_hi + 1]
        i, j, k = np.unravel_index(int(np.argmax(sub)), sub.shape)
        if sub[i, j, k] > best[0]:
            best = (float(sub[i, j, k]), case["id"], (i + box[0].start, j + box[1].start, k + k_lo + box[2].start))
    needed = float(np.hypot(np.hypot(ROI_HALF_MM, ROI_HALF_MM), ROI_HALF_SLICES * spacing[2])) + 0.5
    if best[0] < needed:
        raise ValueError(f"find_roi: region too thin ({best[0]:.1f} mm < {needed:.1f} mm)")
    return best[1], best[2]


def reference_roi(name: str, region: np.ndarray, src: Source, vols: Volumes, cases: list[dict]) -> dict:
    """A world box inside ``region`` with its mean CT/MR at source and at output resolution."""
    spacing = np.abs(np.diag(src.affine)[:3])
    case_id, centre = find_roi(region, spacing, cases)
    centre_mm = (src.affine @ [*centre, 1.0])[:3]
    half = np.array([ROI_HALF_MM, ROI_HALF_MM, (ROI_HALF_SLICES + 0.5) * spacing[2] + 0.01])
    lo, hi = centre_mm - half, centre_mm + half
    s_src = box_slices(src.affine, lo, hi, whole_voxels=False)
    s_out = box_slices(vols.affine, lo, hi, whole_voxels=True)
    return {
        "tissue": name,
        "case": case_id,
        "world_box_mm": [np.round(lo, 4).tolist(), np.round(hi, 4).tolist()],
        "source_voxels": int(src.ct[s_src].size),
        "source_mean_hu": round(float(src.ct[s_src].mean()), 3),
        "source_mean_mr_noise_free": round(float(vols.mr_source[s_src].mean()), 3),
        "output_voxels": int(vols.ct[s_out].size),
        "output_mean_hu": round(float(vols.ct[s_out].mean()), 3),
        "output_mean_mr_noise_free": round(float(vols.mr_noise_free[s_out].mean()), 3),
        "output_mean_mr": round(float(vols.mr[s_out].mean()), 3),
    }


def tissue_means(regions: dict[str, np.ndarray], vols: Volumes, cases: list[dict]) -> dict[str, dict]:
    """Mean and SD of CT and MR over interior voxels (fraction >= 0.9) of each tissue, shipped slices."""
    shipped = np.zeros(vols.ct.shape[2], dtype=bool)
    for case in cases:
        shipped[case["source_slices"][0] : case["source_slices"][1] + 1] = True
    out = {}
    for name, region in regions.items():
        inside = resample_inplane(region.astype(np.float32), vols.grid, 0.0) >= INTERIOR_FRACTION
        inside &= shipped[None, None, :] & (vols.mask > 0)
        if not inside.any():
            continue
        stats = {"voxels": int(inside.sum())}
        for key, arr in (("ct_hu", vols.ct), ("mr_noise_free", vols.mr_noise_free), ("mr", vols.mr)):
            values = arr[inside].astype(np.float64)
            stats[key] = [round(float(values.mean()), 1), round(float(values.std()), 1)]
        out[name] = stats
    return out


def ceiling_metrics(noise_free: np.ndarray, noisy: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """SSIM/PSNR/MAE of the noise-free MR (as prediction) against the noisy MR (as target).

    data_range = noisy.max() - noisy.min() over the slab; SSIM is skimage's default (7-voxel
    uniform window), as a 3D volume and slice-wise in 2D, averaged inside the mask.
    """
    pred, target = noise_free.astype(np.float64), noisy.astype(np.float64)
    data_range = float(target.max() - target.min())
    inside = mask > 0
    _, ssim_map = structural_similarity(target, pred, data_range=data_range, full=True)
    maps_2d = [
        structural_similarity(target[..., k], pred[..., k], data_range=data_range, full=True)[1]
        for k in range(target.shape[2])
    ]
    mse = float(np.mean((pred[inside] - target[inside]) ** 2))
    return {
        "data_range": data_range,
        "ssim_3d_masked": round(float(ssim_map[inside].mean()), 4),
        "ssim_2d_masked": round(float(np.stack(maps_2d, axis=2)[inside].mean()), 4),
        "psnr_db_masked": round(float(10.0 * np.log10(data_range**2 / mse)), 2),
        "mae_masked": round(float(np.abs(pred[inside] - target[inside]).mean()), 2),
        "ssim_3d_unmasked": round(float(ssim_map.mean()), 4),
    }


def signal_centroid(src: Source, vols: Volumes, first: int, last: int) -> dict:
    """World centroid and integral of the noise-free MR of slices first..last, at source resolution.

    Area averaging conserves the integral exactly and the centroid to well under 0.1 mm, so the
    same numbers measured on the shipped file through its affine check the affine end to end.
    """
    sub = vols.mr_source[:, :, first : last + 1].astype(np.float64)
    total = float(sub.sum())
    centre = [
        float((sub.sum(axis=tuple(a for a in range(3) if a != ax)) * np.arange(n)).sum() / total)
        for ax, n in enumerate(sub.shape)
    ]
    world = src.affine @ [centre[0], centre[1], centre[2] + first, 1.0]
    voxel_mm3 = float(abs(np.linalg.det(src.affine[:3, :3])))
    return {"world_mm": np.round(world[:3], 4).tolist(), "integral_au_mm3": round(total * voxel_mm3, 1)}


def quality_report(src: Source, vols: Volumes, cases: list[dict]) -> dict:
    """All QC numbers (stored in the manifest and printed)."""
    regions = tissue_regions(src, vols)
    rois = [reference_roi(n, regions[n], src, vols, cases) for n in ROI_TISSUES]
    ceilings = {}
    for case in cases:
        first, last = case["source_slices"]
        sl = np.s_[:, :, first : last + 1]
        ceilings[case["id"]] = ceiling_metrics(vols.mr_noise_free[sl], vols.mr[sl], vols.mask[sl])
    return {
        "noise_free_mr_centroids": {c["id"]: signal_centroid(src, vols, *c["source_slices"]) for c in cases},
        "reference_rois": rois,
        "tissue_means_output_grid": tissue_means(regions, vols, cases),
        "noise_free_vs_noisy_mr": ceilings,
    }


def print_report(report: dict) -> None:
    """Human-readable summary of :func:`quality_report`."""
    print("reference ROIs (world boxes; source vs output resolution):")
    for r in report["reference_rois"]:
        print(
            f"  {r['tissue']:7s} {r['case']:8s} HU {r['source_mean_hu']:8.1f} -> {r['output_mean_hu']:8.1f}"
            f"   MR {r['source_mean_mr_noise_free']:7.1f} -> {r['output_mean_mr_noise_free']:7.1f}"
        )
    print("tissue means on the output grid (mean, SD): CT HU | MR noise-free | MR noisy:")
    for name, s in report["tissue_means_output_grid"].items():
        print(f"  {name:13s} n={s['voxels']:6d}  {s['ct_hu']}  {s['mr_noise_free']}  {s['mr']}")
    print("noise-free vs noisy MR inside the body (model ceiling):")
    for case_id, m in report["noise_free_vs_noisy_mr"].items():
        print(f"  {case_id}: {m}")
