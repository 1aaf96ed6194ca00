"""The validation montage: a title strip above unchanged panels."""

from __future__ import annotations

import numpy as np
import torch

from medxlate.training.montage import display_slice, make_montage, panel_titles, title_strip, to_uint8


def _volumes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    source = torch.rand((64, 40, 5), generator=gen) * 2000.0 - 1000.0
    real = torch.rand((64, 40, 5), generator=gen) * 900.0
    return source, real + 50.0 * torch.rand((64, 40, 5), generator=gen), real


def test_montage_has_titles_above_unchanged_panels() -> None:
    source, synthetic, real = _volumes()
    montage = make_montage(source, synthetic, real, z=2, titles=panel_titles("CBCT", "CT"))
    real_plane, synthetic_plane = display_slice(real, 2), display_slice(synthetic, 2)
    high = float(np.percentile(real_plane, 99.5))
    panels = [
        to_uint8(display_slice(source, 2), -400.0, 400.0),
        to_uint8(synthetic_plane, 0.0, high),
        to_uint8(real_plane, 0.0, high),
        to_uint8(np.abs(synthetic_plane - real_plane), 0.0, high),
    ]
    height, width = panels[0].shape  # (Y, X) = (40, 64) in display orientation
    strip_height = montage.shape[0] - height
    assert montage.shape == (strip_height + height, 4 * width + 3 * 2, 3) and strip_height >= 8
    assert np.array_equal(montage[..., 0], montage[..., 1]) and np.array_equal(montage[..., 0], montage[..., 2])
    body = montage[strip_height:, :, 0]
    for n, panel in enumerate(panels):
        np.testing.assert_array_equal(body[:, n * (width + 2) : n * (width + 2) + width], panel)
        np.testing.assert_array_equal(body[:, n * (width + 2) + width : (n + 1) * (width + 2)], 255)
    strip = montage[:strip_height, :, 0]
    np.testing.assert_array_equal(strip, title_strip(("CBCT", "synthetic CT", "real CT", "difference"), width, 2))
    for n in range(4):  # every panel has its title: white text on black
        columns = strip[:, n * (width + 2) : n * (width + 2) + width]
        assert columns.max() > 200 and (columns == 0).mean() > 0.5  # antialiased glyphs


def test_titles_are_drawn_text() -> None:
    one, other = title_strip(("CT",), 40, 2), title_strip(("MR",), 40, 2)
    assert one.shape == other.shape and not np.array_equal(one, other)
    assert panel_titles() == ("CT", "synthetic MR", "real MR", "difference")
