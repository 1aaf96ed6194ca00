"""Side-by-side slice montages (source | synthetic | real | |difference|) for tracking and reports."""

from __future__ import annotations

import numpy as np
import torch


def display_slice(volume: torch.Tensor, z: int) -> np.ndarray:
    """Axial slice ``z`` of a RAS (X, Y, Z) volume in radiological display orientation.

    Rows run anterior (top) to posterior, columns patient right (left of the image) to left.
    """
    plane = volume[..., z].detach().float().cpu().numpy()  # (X, Y), X towards patient right... in RAS
    return plane.T[::-1, ::-1]


def to_uint8(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    """Window ``plane`` to [low, high] and scale to 0..255."""
    scaled = (np.clip(plane, low, high) - low) / max(high - low, 1e-12)
    return np.round(scaled * 255.0).astype(np.uint8)


def make_montage(
    source: torch.Tensor,
    synthetic: torch.Tensor,
    real: torch.Tensor,
    z: int,
    source_window: tuple[float, float] = (-400.0, 400.0),
    target_window: tuple[float, float] | None = None,
) -> np.ndarray:
    """One-slice montage source | synthetic | real | absolute difference, as (H, 4W, 3) uint8.

    Args:
        source: (X, Y, Z) source in its units (HU).
        synthetic: (X, Y, Z) synthetic target in target units.
        real: (X, Y, Z) real target in target units.
        z: Axial slice index.
        source_window: Display window for the source.
        target_window: Display window for the target panels (e.g. a CT window in HU); default
            ``[0, p99.5 of the real slice]`` (MR).

    Returns:
        RGB image; the target panels share one intensity scale, the difference spans its width.
    """
    real_plane = display_slice(real, z)
    synthetic_plane = display_slice(synthetic, z)
    low, high = target_window or (0.0, float(np.percentile(real_plane, 99.5)) or 1.0)
    panels = [
        to_uint8(display_slice(source, z), *source_window),
        to_uint8(synthetic_plane, low, high),
        to_uint8(real_plane, low, high),
        to_uint8(np.abs(synthetic_plane - real_plane), 0.0, high - low),
    ]
    separator = np.full((panels[0].shape[0], 2), 255, dtype=np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, separator)][:-1], axis=1)
    return np.repeat(row[..., None], 3, axis=2)
