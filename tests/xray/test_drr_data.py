"""DRR training data: CT onto the model grid, pose jitter about the isocentre, view augmentations."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor

from medxlate.errors import InputDataError
from medxlate.xray import Geometry, project, volume_isocentre
from medxlate.xray.drr_data import AIR_HU, ViewAugmentation, augment_views, jitter_pose, to_model_grid


def linear_ct(shape=(30, 40, 20)) -> tuple[MetaTensor, torch.Tensor]:
    """A LAS, anisotropic CT whose value is a linear function of the world position (exact under interpolation)."""
    affine = torch.diag(torch.tensor([-2.0, 1.5, 3.0, 1.0], dtype=torch.float64))
    affine[:3, 3] = torch.tensor([40.0, -20.0, 10.0])
    index = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in shape], indexing="ij"), -1)
    world = index @ affine[:3, :3].T + affine[:3, 3]
    return MetaTensor((world @ torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))[None].float(), affine=affine), affine


def grid_world(grid: MetaTensor) -> torch.Tensor:
    index = torch.stack(
        torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in grid.shape[1:]], indexing="ij"), -1
    )
    affine = torch.as_tensor(grid.affine, dtype=torch.float64)
    return index @ affine[:3, :3].T + affine[:3, 3]


def test_model_grid_is_ras_isotropic_centred_and_exact_inside() -> None:
    ct, affine = linear_ct()
    grid, record = to_model_grid(ct, size=16, fov_mm=48.0)
    assert grid.shape == (1, 16, 16, 16) and record["spacing_mm"] == 3.0 and record["coverage_xyz"] == [1.0, 1.0, 1.0]
    grid_affine = torch.as_tensor(grid.affine, dtype=torch.float64)
    torch.testing.assert_close(grid_affine[:3, :3], 3.0 * torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(volume_isocentre(grid_affine, (16,) * 3), volume_isocentre(affine, (30, 40, 20)))
    expected = grid_world(grid) @ torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(grid[0].double(), expected.float().double(), rtol=0.0, atol=1e-3)


def test_smaller_ct_is_padded_with_air_or_refused() -> None:
    ct, _ = linear_ct((10, 40, 20))  # 20 mm along x
    grid, record = to_model_grid(ct, size=16, fov_mm=32.0, min_coverage=0.5)
    assert record["coverage_xyz"] == [0.625, 1.0, 1.0]
    x = grid_world(grid)[..., 0] - float(volume_isocentre(torch.as_tensor(grid.affine), (16,) * 3)[0])
    assert torch.all(grid[0][x.abs() > 10.5] == AIR_HU)  # beyond the CT's half extent + half a voxel: air
    with pytest.raises(InputDataError, match=r"field is 64.0 mm per side and at least 50% must be covered"):
        to_model_grid(ct, size=16, fov_mm=64.0, min_coverage=0.5)


def test_pose_jitter_rotates_about_the_isocentre() -> None:
    _, affine = linear_ct()
    generator = torch.Generator().manual_seed(3)
    jittered = jitter_pose(affine, (30, 40, 20), 5.0, generator)
    torch.testing.assert_close(volume_isocentre(jittered, (30, 40, 20)), volume_isocentre(affine, (30, 40, 20)))
    rotation = jittered[:3, :3] @ torch.linalg.inv(affine[:3, :3])
    torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=torch.float64))
    angle = torch.rad2deg(torch.arccos(((torch.trace(rotation) - 1) / 2).clamp(-1, 1)))
    assert 0.0 < float(angle) <= 5.0 * 3**0.5
    again = jitter_pose(affine, (30, 40, 20), 5.0, torch.Generator().manual_seed(3))
    torch.testing.assert_close(again, jittered, rtol=0, atol=0)  # seeded: reproducible
    # a DRR through the jittered placement differs from the original but keeps its mass roughly
    volume = torch.zeros(1, 1, 30, 40, 20, dtype=torch.float64)
    volume[..., 10:20, 15:25, 5:15] = 0.02
    g = Geometry(sdd_mm=600.0, sad_mm=400.0, detector_shape=(24, 24), pixel_mm=3.0)
    a, b = project(volume, affine, [g]), project(volume, jittered, [g])
    assert float((a - b).abs().max()) > 1e-3


def test_view_augmentation_is_seeded_and_each_part_does_its_job() -> None:
    views = torch.linspace(-1, 1, 2 * 16 * 16).reshape(2, 16, 16)
    generator = torch.Generator().manual_seed(0)
    out, params = augment_views(views, ViewAugmentation(), generator)
    again, params2 = augment_views(views, ViewAugmentation(), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    assert params == params2 and out.shape == views.shape and float(out.abs().max()) <= 1.0
    neutral = ViewAugmentation(gamma=(1.0, 1.0), blur_sigma_px=(0.0, 0.0), noise_std=(0.0, 0.0), max_offset_px=0)
    torch.testing.assert_close(augment_views(views, neutral, generator)[0], views)
    gamma = ViewAugmentation(gamma=(2.0, 2.0), blur_sigma_px=(0.0, 0.0), noise_std=(0.0, 0.0), max_offset_px=0)
    torch.testing.assert_close(augment_views(views, gamma, generator)[0], ((views + 1) / 2) ** 2 * 2 - 1)
    shift = ViewAugmentation(gamma=(1.0, 1.0), blur_sigma_px=(0.0, 0.0), noise_std=(0.0, 0.0), max_offset_px=3)
    shifted, p = augment_views(views, shift, torch.Generator().manual_seed(5))
    dr, dc = p["offset_px"]
    assert (dr, dc) != (0, 0)
    torch.testing.assert_close(
        shifted[:, max(dr, 0) : 16 + min(dr, 0), max(dc, 0) : 16 + min(dc, 0)],
        views[:, max(-dr, 0) : 16 + min(-dr, 0), max(-dc, 0) : 16 + min(-dc, 0)],
    )
    blur = ViewAugmentation(gamma=(1.0, 1.0), blur_sigma_px=(1.0, 1.0), noise_std=(0.0, 0.0), max_offset_px=0)
    blurred = augment_views(views, blur, generator)[0]
    torch.testing.assert_close(blurred[:, 4:12, 4:12], views[:, 4:12, 4:12], rtol=0, atol=1e-6)  # linear ramp kept
    spike = torch.full((1, 9, 9), -1.0)
    spike[0, 4, 4] = 1.0
    spread = augment_views(spike, blur, generator)[0]
    torch.testing.assert_close(spread.sum(), spike.sum(), rtol=0, atol=1e-4)  # blur preserves the sum
    assert float(spread[0, 4, 4]) < 1.0
