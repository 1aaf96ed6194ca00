"""The 2D -> 3D generator: contract, the lift's axis convention against the projector, one GAN step."""

from __future__ import annotations

import pytest
import torch

from medxlate.errors import ConfigError, GeometryError
from medxlate.models import build_discriminator, build_generator, get_adversarial_loss
from medxlate.models.x2ct import _to_grid, view_axes
from medxlate.xray import Geometry, project, projection_consistency_loss, views_from_hu
from tests.models.test_model_contract import LIFTING_GENERATORS

TINY = LIFTING_GENERATORS["x2ct"]
S = TINY["image_size"]


@pytest.mark.parametrize("views", [("PA",), ("PA", "LL")], ids=["single", "biplanar"])
def test_contract_single_view_and_biplanar(views) -> None:
    torch.manual_seed(0)
    gen = build_generator("x2ct", 3, in_channels=1, out_channels=1, views=list(views), **TINY)
    x = torch.randn(2, len(views), S, S, requires_grad=True)
    y = gen(x)
    assert y.shape == (2, 1, S, S, S)
    assert torch.isfinite(y).all() and y.min() >= -1.0 and y.max() <= 1.0
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, param in gen.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    gen.eval()
    with torch.no_grad():
        torch.testing.assert_close(gen(x), gen(x), rtol=0, atol=0)
    reloaded = build_generator("x2ct", 3, in_channels=1, out_channels=1, views=list(views), **TINY).eval()
    reloaded.load_state_dict(gen.state_dict())  # state dict complete before any forward
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), gen(x), rtol=0, atol=0)


def blob_volume() -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int]]:
    """An S^3 RAS grid (2 mm) with one dense voxel off every axis centre."""
    index = (4, 11, 12)
    volume = torch.zeros(1, 1, S, S, S, dtype=torch.float64)
    volume[(0, 0, *index)] = 1.0
    return volume, torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64)), index


@pytest.mark.parametrize("view", ["PA", "AP", "LL", "RL"])
def test_lift_axes_agree_with_the_projector(view) -> None:
    """A detector pixel's lifted ray passes through the voxel the projector images on that pixel."""
    volume, affine, index = blob_volume()
    near_parallel = Geometry(
        sdd_mm=100_000.0, sad_mm=99_000.0, detector_shape=(S, S), pixel_mm=2.0 * 100 / 99, view=view
    )
    drr = project(volume, affine, [near_parallel], samples_per_voxel=4.0)[0, 0]
    row, col = divmod(int(drr.argmax()), S)
    axes, flips = view_axes(view)
    feature = torch.zeros(1, 1, S, S, S)  # (B, C, depth, rows, cols)
    feature[0, 0, 0, row, col] = 1.0  # the source end of that pixel's ray
    grid = _to_grid(feature, axes, flips)[0, 0]
    line = _to_grid(feature.index_fill(2, torch.arange(S), 0.0) + feature.amax(dim=2, keepdim=True), axes, flips)[0, 0]
    assert line[index] == 1.0 and int(line.sum()) == S  # the whole ray, through the blob
    source_end = tuple(int(i) for i in grid.nonzero()[0])
    to_source = Geometry(sdd_mm=2.0, sad_mm=1.0, detector_shape=(1, 1), pixel_mm=1.0, view=view).frame()[0]
    beam_axis = int(to_source.abs().argmax())
    # depth 0 lies on the source side: the grid index along the beam axis is at the source's end
    assert source_end[beam_axis] == (S - 1 if to_source[beam_axis] > 0 else 0)


def test_biplanar_fusion_is_symmetric_in_the_views() -> None:
    """Swapping the two views (and their encoders) gives the same volume: the fusion is a mean."""
    torch.manual_seed(0)
    pa_ll = build_generator("x2ct", 3, 1, 1, views=["PA", "LL"], **TINY).eval()
    ll_pa = build_generator("x2ct", 3, 1, 1, views=["LL", "PA"], **TINY).eval()
    state = pa_ll.state_dict()
    swapped = {
        k.replace("encoders.0", "E1")
        .replace("encoders.1", "encoders.0")
        .replace("E1", "encoders.1")
        .replace("lift.0", "L1")
        .replace("lift.1", "lift.0")
        .replace("L1", "lift.1"): v
        for k, v in state.items()
    }
    ll_pa.load_state_dict(swapped)
    x = torch.randn(1, 2, S, S)
    with torch.no_grad():
        torch.testing.assert_close(ll_pa(x.flip(1)), pa_ll(x), rtol=1e-5, atol=1e-6)


def test_projection_consistency_loss() -> None:
    torch.manual_seed(0)
    hu = torch.full((2, 1, S, S, S), -1000.0, dtype=torch.float64)
    hu[:, :, 4:12, 3:13, 2:14] = 40.0
    hu[0, :, 6:9, 5:8, 4:10] = 900.0
    hu[1, :, 9:11, 4:6, 7:12] = 900.0
    affine = torch.diag(torch.tensor([2.0, 2.5, 2.0, 1.0], dtype=torch.float64))
    geometries = [
        Geometry(sdd_mm=900.0, sad_mm=600.0, detector_shape=(16, 16), pixel_mm=3.0, view=v) for v in ("PA", "LL")
    ]
    views = views_from_hu(hu, affine, geometries)
    assert views.shape == (2, 2, 16, 16) and float(views.min()) == -1.0 and float(views.max()) == 1.0
    zero = projection_consistency_loss(hu, views, affine, geometries)
    torch.testing.assert_close(zero, torch.zeros((), dtype=torch.float64))
    predicted = hu.flip(0).clone().requires_grad_(True)  # each case predicted as the other one
    loss = projection_consistency_loss(predicted, views, affine, geometries)
    torch.testing.assert_close(loss.detach(), (views.flip(0) - views).abs().mean())
    assert float(loss.detach()) > 0.01  # the two cases' views really differ
    loss.backward()
    assert predicted.grad is not None and torch.isfinite(predicted.grad).all() and predicted.grad.abs().sum() > 0


def test_one_gan_step_with_target_only_discriminator() -> None:
    """G: views -> volume; D: 3D PatchGAN on the volume alone (the grids differ); L1 + projection terms."""
    torch.manual_seed(0)
    geometries = [Geometry(sdd_mm=900.0, sad_mm=600.0, detector_shape=(S, S), pixel_mm=4.0, view="PA")]
    gen = build_generator("x2ct", 3, 1, 1, views=["PA"], **TINY)
    disc = build_discriminator("patchgan", 3, in_channels=1, ndf=4, n_layers=2)
    adversarial = get_adversarial_loss("lsgan")
    affine = torch.diag(torch.tensor([4.0, 4.0, 4.0, 1.0]))
    target_hu = torch.full((1, 1, S, S, S), -1000.0)
    target_hu[:, :, 3:13, 4:12, 2:14] = 50.0
    views = views_from_hu(target_hu, affine, geometries)
    fake = gen(views)  # in [-1, 1]; HU window [-1024, 3071]
    fake_hu = (fake + 1.0) / 2.0 * 4095.0 - 1024.0
    loss = (
        adversarial.generator_loss(disc(fake))
        + (fake - ((target_hu + 1024.0) / 4095.0 * 2.0 - 1.0)).abs().mean()
        + projection_consistency_loss(fake_hu, views, affine, geometries)
    )
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.parameters())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"spatial_dims": 2}, ConfigError, "expected 3"),
        ({"views": ["PA", 45.0]}, ConfigError, "not a multiple of 90 degrees"),
        ({"views": "PA"}, ConfigError, "expected a list of views"),
        ({"image_size": 20}, ConfigError, "not a multiple of 2\\*\\*num_downs=8"),
    ],
)
def test_bad_parameters(kwargs, error, match) -> None:
    params = {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "views": ["PA"], **TINY} | kwargs
    with pytest.raises(error, match=match):
        build_generator("x2ct", **params)


def test_wrong_view_count_or_size() -> None:
    gen = build_generator("x2ct", 3, 1, 1, views=["PA", "LL"], **TINY)
    with pytest.raises(GeometryError, match="does not match"):
        gen(torch.zeros(1, 1, S, S))  # one view given to a biplanar model
    with pytest.raises(GeometryError, match="expected \\(16, 16\\)"):
        gen(torch.zeros(1, 2, 32, 32))
