"""Both valid-region Gaussian filter paths (CPU banded GEMM, GPU shifted sums) against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch.testing import assert_close

from medxlate.metrics import filtering


@pytest.mark.parametrize("path", [filtering._banded_matmul, filtering._shifted_sum], ids=["banded", "shifted"])
@pytest.mark.parametrize("shape", [(2, 3, 21, 30), (2, 19, 300), (1, 300, 17)], ids=["2d", "long-last", "long-first"])
def test_filter_paths_match_scipy_on_valid_region(path, shape: tuple[int, ...]) -> None:
    """300 voxels along one axis exercise several CHUNK blocks and a shorter remainder."""
    images = np.random.default_rng(0).standard_normal(shape)
    spatial_dims = 2
    kernel = filtering.gaussian_kernel1d(1.5, 3.5, dtype=torch.float64, device=torch.device("cpu"))
    radius = kernel.numel() // 2
    sigma = (0,) * (len(shape) - spatial_dims) + (1.5,) * spatial_dims
    full = gaussian_filter(images, sigma, mode="reflect", truncate=3.5)
    inner = (Ellipsis, *(slice(radius, n - radius) for n in shape[-spatial_dims:]))
    result = torch.from_numpy(images)
    for axis in range(len(shape) - spatial_dims, len(shape)):
        result = path(result, kernel, axis)
    assert_close(result, torch.from_numpy(full[inner]), atol=1e-12, rtol=1e-12)


def test_kernel_matches_scipy_radius_and_weights() -> None:
    kernel = filtering.gaussian_kernel1d(1.5, 3.5, dtype=torch.float64, device=torch.device("cpu"))
    impulse = np.zeros(31)
    impulse[15] = 1.0
    expected = gaussian_filter(impulse, 1.5, truncate=3.5)[10:21]
    assert kernel.numel() == 11
    assert_close(kernel, torch.from_numpy(expected))
