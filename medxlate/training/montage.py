"""Side-by-side slice montages (source | synthetic | real | |difference|), titled, for tracking and reports."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

_SEPARATOR = 2  # white columns between panels
_LIFT_PANEL_PIXELS = 192  # X-ray -> CT panels smaller than this are enlarged by an integer factor


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


def panel_titles(source_modality: str = "CT", target_modality: str = "MR") -> tuple[str, str, str, str]:
    """The montage's panel titles for a task, e.g. ``CT | synthetic MR | real MR | difference``."""
    return (source_modality, f"synthetic {target_modality}", f"real {target_modality}", "difference")


def title_strip(titles: tuple[str, ...], panel_width: int, separator: int) -> np.ndarray:
    """A black (h, W) uint8 strip with each title in white, centred over its panel (PIL's default font).

    Args:
        titles: One title per panel, left to right.
        panel_width: Width of a panel in pixels.
        separator: Width of the gap between panels.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    boxes = [font.getbbox(title) for title in titles]
    height = max(box[3] for box in boxes) + 4
    width = len(titles) * panel_width + (len(titles) - 1) * separator
    strip = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(strip)
    for n, (title, box) in enumerate(zip(titles, boxes, strict=True)):
        left = n * (panel_width + separator) + max((panel_width - (box[2] - box[0])) // 2, 0) - box[0]
        draw.text((left, 2), title, fill=255, font=font)
    return np.asarray(strip, dtype=np.uint8)


def make_montage(
    source: torch.Tensor,
    synthetic: torch.Tensor,
    real: torch.Tensor,
    z: int,
    source_window: tuple[float, float] = (-400.0, 400.0),
    target_window: tuple[float, float] | None = None,
    titles: tuple[str, str, str, str] | None = None,
) -> np.ndarray:
    """One-slice montage source | synthetic | real | absolute difference, as (h + H, 4W + 6, 3) uint8.

    Args:
        source: (X, Y, Z) source in its units (HU).
        synthetic: (X, Y, Z) synthetic target in target units.
        real: (X, Y, Z) real target in target units.
        z: Axial slice index.
        source_window: Display window for the source.
        target_window: Display window for the target panels (e.g. a CT window in HU); default
            ``[0, p99.5 of the real slice]`` (MR).
        titles: Panel titles drawn in a strip of height ``h`` above the panels (default
            :func:`panel_titles` for CT->MR).

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
    separator = np.full((panels[0].shape[0], _SEPARATOR), 255, dtype=np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, separator)][:-1], axis=1)
    strip = title_strip(titles or panel_titles(), panels[0].shape[1], _SEPARATOR)
    return np.repeat(np.concatenate([strip, row], axis=0)[..., None], 3, axis=2)


def coronal_slice(volume: torch.Tensor, y: int) -> np.ndarray:
    """Coronal slice ``y`` of a RAS (X, Y, Z) volume as displayed: superior at the top, patient
    right on the image's left (as a PA radiograph is read)."""
    plane = volume[:, y, :].detach().float().cpu().numpy()  # (X, Z)
    return plane.T[::-1, ::-1]


def make_lift_montage(
    views: torch.Tensor,
    synthetic: torch.Tensor,
    real: torch.Tensor,
    ct_window: tuple[float, float],
    view_names: Sequence[str] | None = None,
) -> np.ndarray:
    """X-ray -> CT montage: input view(s) | synthetic CT | real CT | difference (central coronal slice).

    Args:
        views: ``(V, S, S)`` views in ``[-1, 1]`` (rows superior -> inferior, as displayed).
        synthetic: ``(S, S, S)`` predicted CT in HU (RAS grid).
        real: ``(S, S, S)`` real CT in HU on the same grid.
        ct_window: The CT window; the CT panels show its part within [-1000, 1000] HU.
        view_names: Titles of the view panels (e.g. ``["PA"]``).

    Returns:
        RGB ``uint8`` image with a title strip.
    """
    y = real.shape[1] // 2
    low, high = max(ct_window[0], -1000.0), min(ct_window[1], 1000.0)  # soft tissue, lungs and bone apart
    synthetic_plane, real_plane = coronal_slice(synthetic, y), coronal_slice(real, y)
    panels = [to_uint8(v.detach().float().cpu().numpy(), -1.0, 1.0) for v in views]
    panels += [
        to_uint8(synthetic_plane, low, high),
        to_uint8(real_plane, low, high),
        to_uint8(np.abs(synthetic_plane - real_plane), 0.0, high - low),
    ]
    zoom = max(1, _LIFT_PANEL_PIXELS // panels[0].shape[0])  # small model grids are enlarged to be legible
    panels = [np.kron(panel, np.ones((zoom, zoom), dtype=np.uint8)) for panel in panels]
    separator = np.full((panels[0].shape[0], _SEPARATOR), 255, dtype=np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, separator)][:-1], axis=1)
    names = view_names or [f"view {n + 1}" for n in range(len(views))]
    titles = (*(f"XR {name}" for name in names), "synthetic CT", "real CT", "difference")
    strip = title_strip(titles, panels[0].shape[1], _SEPARATOR)
    return np.repeat(np.concatenate([strip, row], axis=0)[..., None], 3, axis=2)
