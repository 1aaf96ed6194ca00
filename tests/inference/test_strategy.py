"""Inference strategies: records, the one inferer builder, slice and sliding-window runs, OOM retry."""

from __future__ import annotations

import logging

import pytest
import torch
from monai.data.utils import compute_importance_map
from monai.inferers import SliceInferer, SlidingWindowInferer

from medxlate.errors import CheckpointError, ConfigError, DeviceMemoryError
from medxlate.inference import (
    SliceStrategy,
    SlidingWindowStrategy,
    build_inferer,
    infer_volume,
    strategy_from_dict,
    strategy_to_dict,
)
from medxlate.inference.strategy import gaussian_weights
from medxlate.models import build_generator
from medxlate.transforms import pad_in_plane, stack_context

CPU = torch.device("cpu")


class Pointwise(torch.nn.Module):
    """A voxel-wise 'generator': the output at a voxel depends only on the input there (the middle
    channel, i.e. the slice itself when 2.5D context slices are stacked around it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        middle = x.shape[1] // 2
        return torch.tanh(0.7 * x[:, middle : middle + 1] + 0.1)


class OutOfMemoryAbove(Pointwise):
    """Raises CUDA's out-of-memory error for batches larger than ``limit`` (``0``: always)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return super().forward(x)


def test_records_round_trip_and_old_checkpoints_load_as_slices() -> None:
    window = SlidingWindowStrategy(roi_size=(32, 32, 16), overlap=0.5, mode="constant", sw_batch_size=2)
    record = strategy_to_dict(window)
    assert record == {"roi_size": [32, 32, 16], "overlap": 0.5, "mode": "constant", "sw_batch_size": 2,
                      "kind": "sliding_window"}  # fmt: skip
    assert strategy_from_dict(record) == window
    assert strategy_from_dict(strategy_to_dict(SliceStrategy(2, 4))) == SliceStrategy(2, 4)
    assert strategy_from_dict(None, context_slices=1) == SliceStrategy(context_slices=1, sw_batch_size=8)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"kind": "cone"}, "unknown kind 'cone'"),
        ({"kind": "lift"}, "not understood"),  # no views, size or geometry
        ({"kind": "lift", "views": [], "size": 8, "fov_mm": 100.0, "sdd_mm": 900.0, "sad_mm": 500.0}, "views"),
        ({"kind": "lift", "views": ["PA"], "size": 8, "fov_mm": 100.0, "sdd_mm": 400.0, "sad_mm": 500.0}, "sad_mm"),
        ({"kind": "lift", "views": ["XX"], "size": 8, "fov_mm": 100.0, "sdd_mm": 900.0, "sad_mm": 500.0}, "XX"),
        ({"kind": "sliding_window", "roi_size": [32, 0, 16]}, "roi_size"),
        ({"kind": "sliding_window", "roi_size": [32, 32, 16], "overlap": 1.0}, "overlap"),
        ({"kind": "sliding_window", "roi_size": [32, 32, 16], "mode": "max"}, "mode"),
        ({"kind": "slices", "context_slices": -1}, "context_slices"),
        ({"kind": "slices", "stride": 2}, "stride"),
    ],
)
def test_bad_records_are_checkpoint_errors(record: dict, match: str) -> None:
    with pytest.raises(CheckpointError, match=match):
        strategy_from_dict(record)


def test_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="sw_batch_size: expected an integer >= 1, got 0"):
        SlidingWindowStrategy(roi_size=(8, 8, 8), sw_batch_size=0)
    with pytest.raises(ConfigError, match=r"three positive integers \(X, Y, Z\), got \[8, 8\]"):
        SlidingWindowStrategy(roi_size=(8, 8))  # type: ignore[arg-type]


def test_build_inferer_maps_each_strategy_to_its_monai_inferer() -> None:
    slices = build_inferer(SliceStrategy(context_slices=1, sw_batch_size=3))
    assert type(slices) is SliceInferer
    assert (slices.spatial_dim, slices.sw_batch_size, slices.cval) == (2, 3, -1.0)
    window = build_inferer(SlidingWindowStrategy(roi_size=(16, 16, 8), overlap=0.5, sw_batch_size=2))
    assert type(window) is SlidingWindowInferer
    assert (tuple(window.roi_size), window.overlap, window.mode, window.sw_batch_size, window.cval) == (
        (16, 16, 8), 0.5, "gaussian", 2, -1.0
    )  # fmt: skip


@pytest.mark.parametrize("context_slices", [0, 2])
def test_slices_equal_the_generator_applied_to_each_padded_slice(context_slices: int) -> None:
    torch.manual_seed(0)
    generator = build_generator("unet", 2, 2 * context_slices + 1, 1, num_downs=3, ngf=4).eval()
    source = torch.rand(1, 13, 10, 5) * 2 - 1  # in-plane sizes not multiples of 8
    output = infer_volume(generator, source, SliceStrategy(context_slices, sw_batch_size=2), 8, CPU)

    stacked, (crop_x, crop_y) = pad_in_plane(stack_context(source, context_slices), 8, -1.0)
    with torch.no_grad():
        reference = torch.stack([generator(stacked[None, ..., z])[0] for z in range(5)], dim=-1)
    assert output.shape == (1, 13, 10, 5)
    torch.testing.assert_close(output, reference[:, crop_x, crop_y], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(20, 13, 7), (8, 8, 8), (5, 30, 17)])
@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_sliding_window_covers_any_size_exactly(shape: tuple[int, int, int], mode: str) -> None:
    """Windows of a voxel-wise network blend back to the network on the whole volume, whatever the
    size: larger than a window, equal to it, or smaller along some axes (padded, cropped back)."""
    source = torch.rand(1, *shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    strategy = SlidingWindowStrategy(roi_size=(8, 8, 8), overlap=0.5, mode=mode, sw_batch_size=3)
    output = infer_volume(Pointwise(), source, strategy, 4, CPU)
    assert output.shape == (1, *shape) and output.dtype == torch.float32
    torch.testing.assert_close(output, Pointwise()(source[None])[0], rtol=1e-6, atol=1e-6)


class WrongAtBorder(torch.nn.Module):
    """A window-position-dependent 'generator' ignoring its input: 1 on the window's outer voxel
    layer, 0 inside, like a network whose zero padding spoils the voxels next to a window's border."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 1, *x.shape[2:])
        for axis in range(2, x.dim()):
            out.index_fill_(axis, torch.tensor([0, x.shape[axis] - 1]), 1.0)
        return out


@pytest.mark.parametrize(("overlap", "limit"), [(0.25, 0.07), (0.5, 0.01)])
def test_gaussian_windows_fade_out_to_their_borders(overlap: float, limit: float) -> None:
    """A constant input blended from windows wrong at their borders: inside the volume (whose own
    outer layer only the border of one window covers) every window border is outweighed by the
    neighbour's interior. MONAI's map, floored at 1e-3, weighed borders like interiors where the
    three Gaussian tails multiply below the floor: 0.875 (0.75 at overlap 0.5) inside, as seams."""
    strategy = SlidingWindowStrategy(roi_size=(16, 16, 8), overlap=overlap, sw_batch_size=4)
    output = infer_volume(WrongAtBorder(), -torch.ones(1, 40, 36, 20), strategy, 4, CPU)
    inside = output[0, 1:-1, 1:-1, 1:-1]
    assert float(inside.max()) < limit, float(inside.max())
    assert float(output[0, 0].min()) == pytest.approx(1.0)  # the volume's edge: one window's border only


def test_gaussian_weights_are_monais_gaussian_without_its_floor() -> None:
    roi = (96, 96, 16)
    weights = gaussian_weights(roi)
    monai = compute_importance_map(roi, mode="gaussian", sigma_scale=0.125)
    assert weights.shape == roi and weights.dtype == torch.float32
    above = monai > 2e-3  # MONAI's floor (1e-3) covers 58 % of this window
    torch.testing.assert_close(weights[above], monai[above], rtol=1e-5, atol=1e-7)
    assert float((monai <= 1e-3).float().mean()) > 0.5
    corner = float(torch.exp(torch.tensor(-0.5 * (47.5 / 12) ** 2 * 2 - 0.5 * (7.5 / 2) ** 2)))
    assert float(weights.min()) == pytest.approx(corner, rel=1e-4) and corner > 1e-12
    torch.testing.assert_close(weights, weights.flip(0).flip(1).flip(2))
    assert build_inferer(SlidingWindowStrategy(roi_size=roi)).roi_weight_map is not None
    assert build_inferer(SlidingWindowStrategy(roi_size=roi, mode="constant")).roi_weight_map is None


def test_sliding_window_with_a_3d_unet_matches_one_window_and_blends_overlaps() -> None:
    torch.manual_seed(0)
    generator = build_generator("unet", 3, 1, 1, num_downs=2, ngf=4).eval()
    source = torch.rand(1, 8, 8, 8) * 2 - 1
    strategy = SlidingWindowStrategy(roi_size=(8, 8, 8), overlap=0.25)
    with torch.no_grad():
        direct = generator(source[None])[0]
    torch.testing.assert_close(infer_volume(generator, source, strategy, 4, CPU), direct, rtol=1e-6, atol=1e-6)
    # a longer volume: the first window's interior (away from the overlap) is that window's output
    long = torch.rand(1, 8, 8, 20) * 2 - 1
    output = infer_volume(generator, long, strategy, 4, CPU)
    with torch.no_grad():
        first = generator(long[None, ..., :8])[0]
    torch.testing.assert_close(output[..., :4], first[..., :4], rtol=1e-5, atol=1e-6)
    assert output.shape == (1, 8, 8, 20) and torch.isfinite(output).all()


def test_window_not_a_multiple_of_the_generator_is_a_clear_error() -> None:
    strategy = SlidingWindowStrategy(roi_size=(16, 12, 16))
    with pytest.raises(ConfigError, match=r"roi_size \[16, 12, 16\]: every side must be a multiple of 8"):
        infer_volume(Pointwise(), torch.zeros(1, 16, 16, 16), strategy, 8, CPU)


def test_out_of_memory_halves_the_window_batch_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    network = OutOfMemoryAbove(limit=2)
    source = torch.rand(1, 16, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    strategy = SlidingWindowStrategy(roi_size=(8, 8, 8), overlap=0.0, sw_batch_size=8)
    with caplog.at_level(logging.WARNING, logger="medxlate.inference.runner"):
        output = infer_volume(network, source, strategy, 1, CPU)
    torch.testing.assert_close(output, Pointwise()(source[None])[0], rtol=1e-6, atol=1e-6)
    assert network.batches == [8, 4, 2, 2, 2, 2]  # 8 windows: two failed tries, then four batches of 2
    assert [r.getMessage() for r in caplog.records] == [
        "out of memory on cpu with 8 windows per batch; retrying with 4",
        "out of memory on cpu with 4 windows per batch; retrying with 2",
    ]


def test_out_of_memory_at_one_window_is_a_clear_error() -> None:
    strategy = SlidingWindowStrategy(roi_size=(8, 8, 8), sw_batch_size=2)
    with pytest.raises(DeviceMemoryError, match=r"one window per batch \(roi_size \[8, 8, 8\]\)") as info:
        infer_volume(OutOfMemoryAbove(limit=0), torch.zeros(1, 8, 8, 8), strategy, 1, CPU)
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    with pytest.raises(DeviceMemoryError, match="whole axial slices"):
        infer_volume(OutOfMemoryAbove(limit=0), torch.zeros(1, 8, 8, 3), SliceStrategy(sw_batch_size=1), 1, CPU)


@pytest.mark.gpu
def test_cuda_bf16_windows_match_cpu_fp32() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    torch.manual_seed(0)
    generator = build_generator("unet", 3, 1, 1, num_downs=3, ngf=8).eval()
    source = torch.rand(1, 40, 36, 20) * 2 - 1
    strategy = SlidingWindowStrategy(roi_size=(16, 16, 16), overlap=0.25, sw_batch_size=4)
    expected = infer_volume(generator, source, strategy, 8, CPU, bf16=False)
    output = infer_volume(generator.cuda(), source, strategy, 8, torch.device("cuda"), bf16=True)
    assert output.dtype == torch.float32 and output.device.type == "cpu"
    torch.testing.assert_close(output, expected, rtol=0, atol=3e-2)  # bf16 keeps 8 significant bits


def test_lift_strategy_round_trips_and_places_the_grid_on_the_isocentre() -> None:
    from medxlate.inference import LiftStrategy

    strategy = LiftStrategy(("PA", "LL"), size=8, fov_mm=80.0, sdd_mm=1000.0, sad_mm=500.0)
    assert strategy_from_dict(strategy_to_dict(strategy)) == strategy
    affine = strategy.grid_affine()
    centre = affine[:3, :3] @ torch.full((3,), 3.5, dtype=torch.float64) + affine[:3, 3]
    torch.testing.assert_close(centre, torch.zeros(3, dtype=torch.float64))  # voxel centre of the cube
    torch.testing.assert_close(affine.diagonal()[:3], torch.full((3,), 10.0, dtype=torch.float64))
    pa, ll = strategy.geometries()
    assert (pa.view, ll.view) == ("PA", "LL")
    assert pa.detector_shape == (8, 8)
    # the detector covers the 80 mm field at the isocentre plane: 80 mm x magnification 2 over 8 pixels
    assert pa.pixel_mm == (20.0, 20.0)
    inferer = build_inferer(strategy)
    views = torch.randn(2, 2, 8, 8)
    torch.testing.assert_close(inferer(views, lambda x: x * 2), views * 2)
