"""Evaluation report as pictures: per-metric box plots and a worst/best case montage (PNG, matplotlib).

The montage shows, for each chosen case, its axial, coronal and sagittal planes through the body
mask's centre as ``source | synthetic | real | synthetic - real`` (without the source column when
the source is not a volume: X-ray -> CT), in radiological display
orientation (RAS volumes: patient right on the image's left, anterior / superior up) with the voxel
spacing as aspect ratio. Synthetic and real share one display window; the difference uses a
symmetric diverging colour map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medxlate.io.atomic import atomic_path

#: Metrics where a lower value is better (everything else: higher is better).
LOWER_IS_BETTER = ("mae", "mae_body", "ceiling_mae", "ceiling_mae_body")
PLANES = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class CaseVolumes:
    """One case for the montage: RAS-oriented ``(X, Y, Z)`` arrays on one grid and the spacing (mm);
    ``source`` is ``None`` when the model's input is not a volume (radiograph views)."""

    case_id: str
    source: np.ndarray | None
    synthetic: np.ndarray
    real: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    label: str = ""


def worst_and_best(per_case: dict[str, dict[str, float]], metric: str, count: int = 1) -> tuple[list[str], list[str]]:
    """Case ids of the ``count`` worst and ``count`` best cases by ``metric`` (NaN values ignored).

    Returns:
        ``(worst, best)``, worst first in ``worst`` and best first in ``best``; a case is never in both.
    """
    scored = [(v[metric], case) for case, v in per_case.items() if math.isfinite(v[metric])]
    scored.sort(reverse=metric not in LOWER_IS_BETTER)  # best first
    best = [case for _, case in scored[:count]]
    worst = [case for _, case in reversed(scored) if case not in best][:count]
    return worst, best


def orthogonal_planes(volume: np.ndarray, centre: Sequence[int]) -> dict[str, np.ndarray]:
    """Axial, coronal and sagittal planes through ``centre`` of a RAS ``(X, Y, Z)`` volume, for display.

    Rows/columns: axial (anterior at the top, patient right on the left), coronal (superior at the
    top, patient right on the left), sagittal (superior at the top, anterior on the left).
    """
    x, y, z = centre
    return {
        "axial": volume[:, :, z].T[::-1, ::-1],
        "coronal": volume[:, y, :].T[::-1, ::-1],
        "sagittal": volume[x, :, :].T[::-1, ::-1],
    }


def plane_aspect(plane: str, spacing: Sequence[float]) -> float:
    """Height/width of one display pixel: row spacing over column spacing of that plane."""
    sx, sy, sz = spacing
    return {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[plane]


def mask_centre(mask: np.ndarray) -> tuple[int, int, int]:
    """Voxel index of the mask's centroid (the volume's centre for an empty mask)."""
    where = np.argwhere(mask > 0)
    if where.size == 0:
        return tuple(int(n // 2) for n in mask.shape)  # type: ignore[return-value]
    return tuple(round(float(v)) for v in where.mean(axis=0))  # type: ignore[return-value]


def write_boxplots(per_case: dict[str, dict[str, float]], metrics: Sequence[str], path: Path, title: str) -> Path:
    """One box plot per metric with every case as a point; PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 3.4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes[0], metrics, strict=True):
        values = np.array([v[metric] for v in per_case.values() if math.isfinite(v[metric])])
        ax.boxplot(values, widths=0.5, showfliers=False)
        ax.scatter(1 + rng.uniform(-0.12, 0.12, values.size), values, s=12, alpha=0.7, zorder=3)
        better = "lower" if metric in LOWER_IS_BETTER else "higher"
        ax.set_title(f"{metric}\n({better} is better, n={values.size})", fontsize=9)
        ax.set_xticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def write_montage(
    cases: Sequence[CaseVolumes], path: Path, source_window: tuple[float, float], target_window: tuple[float, float]
) -> Path:
    """Rows: each case's three planes; columns: source | synthetic | real | synthetic - real (no source
    column when no case has a source volume)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_source = any(c.source is not None for c in cases)
    width = 4 if with_source else 3
    fig, axes = plt.subplots(3 * len(cases), width, figsize=(2.5 * width, 7.2 * len(cases)), squeeze=False)
    limit = max(float(np.percentile(np.abs(c.synthetic - c.real), 99)) for c in cases) or 1.0
    for n, case in enumerate(cases):
        centre = mask_centre(case.mask)
        source = case.source if case.source is not None else np.zeros_like(case.real)
        columns = [
            ("source", source, {"cmap": "gray", "vmin": source_window[0], "vmax": source_window[1]}),
            ("synthetic", case.synthetic, {"cmap": "gray", "vmin": target_window[0], "vmax": target_window[1]}),
            ("real", case.real, {"cmap": "gray", "vmin": target_window[0], "vmax": target_window[1]}),
            ("synthetic - real", case.synthetic - case.real, {"cmap": "coolwarm", "vmin": -limit, "vmax": limit}),
        ][4 - width :]
        for col, (name, volume, style) in enumerate(columns):
            planes = orthogonal_planes(volume, centre)
            for row, plane in enumerate(PLANES):
                ax = axes[3 * n + row, col]
                image = ax.imshow(planes[plane], aspect=plane_aspect(plane, case.spacing), **style)
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    ax.set_title(f"{case.label} {case.case_id}\n{name}" if col == 0 else name, fontsize=9)
                if col == 0:
                    ax.set_ylabel(plane, fontsize=9)
                if col == width - 1 and row == 0:
                    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path
