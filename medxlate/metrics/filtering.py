"""Separable Gaussian filtering restricted to the valid region, as SSIM needs it.

SSIM as defined by scikit-image filters five images (x, y, x², y², xy) with a Gaussian of radius
``r = int(truncate * sigma + 0.5)`` and ``mode='reflect'``, then discards an ``r``-wide strip at every
border before averaging. A voxel ``r`` or more away from every border only sees voxels inside the
image, so the kept region is exactly the *valid* correlation of the image with the kernel: padding
never influences the result, and we skip it. Each axis is filtered with the same 1D kernel in turn
(separable), and every axis shrinks by ``2r``.

Two exact float32 implementations of one 1D valid correlation, chosen by device:

* CPU: a banded (Toeplitz) matrix product along the axis, in chunks of :data:`CHUNK` outputs.
  A GEMM does ~``CHUNK + 2r`` multiply-adds per output instead of ``2r + 1``, but runs near peak
  FLOP rate, which on CPUs beats both depthwise ``conv3d`` and shifted sums by 2x or more
  (see ``benchmarks/metrics_speed.py``).
* Other devices (CUDA): a symmetric sum of shifted views, elementwise only. GPU convolutions and
  matmuls may silently run in TF32 (``torch.backends.cudnn.allow_tf32`` is on by default), whose
  10-bit mantissa wrecks ``E[x²] - E[x]²``; elementwise kernels never do, and they are
  memory-bound there anyway.
"""

from __future__ import annotations

import functools

import torch

#: Output length of one banded-matrix block on CPU (the GEMM does CHUNK + 2r MACs per output).
CHUNK = 128


def gaussian_kernel1d(sigma: float, truncate: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1D Gaussian exactly as ``scipy.ndimage.gaussian_filter`` builds it.

    ``radius = int(truncate * sigma + 0.5)``, weights ``exp(-x² / (2 sigma²))`` for
    ``x = -radius..radius`` divided by their sum, computed in float64 and then cast.

    Args:
        sigma: Standard deviation in voxels (> 0).
        truncate: Kernel half-width in standard deviations.
        dtype: dtype of the returned kernel.
        device: Device of the returned kernel.

    Returns:
        Kernel of shape ``(2 * radius + 1,)``.
    """
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    phi = torch.exp(-0.5 / (sigma * sigma) * x * x)
    return (phi / phi.sum()).to(dtype)


def filter_valid(images: torch.Tensor, kernel: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Correlate the last ``spatial_dims`` axes with a symmetric 1D kernel, valid region only.

    Args:
        images: ``(..., *spatial)``; every spatial size must be at least ``len(kernel)``.
        kernel: Symmetric 1D kernel of odd length ``2r + 1``, same dtype and device as ``images``.
        spatial_dims: How many trailing axes are spatial.

    Returns:
        ``(..., *(s - 2r for s in spatial))``.
    """
    filter_axis = _banded_matmul if images.device.type == "cpu" else _shifted_sum
    for axis in range(images.ndim - spatial_dims, images.ndim):
        images = filter_axis(images, kernel, axis)
    return images


def _shifted_sum(images: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Valid correlation along ``axis`` as ``sum_k w_k x[i + k]``, pairing the symmetric taps."""
    radius = kernel.numel() // 2
    n_out = images.shape[axis] - 2 * radius
    out = images.narrow(axis, radius, n_out) * kernel[radius]
    for k in range(radius):  # loop over taps (at most a dozen), not voxels
        pair = images.narrow(axis, k, n_out) + images.narrow(axis, 2 * radius - k, n_out)
        out.addcmul_(pair, kernel[k])  # kernel[k] stays a 0-d tensor: no host sync
    return out


@functools.lru_cache(maxsize=64)
def _band(weights: tuple[float, ...], n_out: int, dtype: torch.dtype) -> torch.Tensor:
    """CPU matrix ``T`` of shape ``(n_out + 2r, n_out)`` with ``T[i + k, i] = weights[k]``.

    Cached (a few kB each, read-only): one SSIM call needs the same band for 5 images x 3 axes.
    """
    kernel = torch.tensor(weights, dtype=dtype)
    width = kernel.numel()
    rows = torch.arange(n_out + width - 1)[:, None]
    offset = rows - torch.arange(n_out)[None, :]  # k = row - col
    inside = (offset >= 0) & (offset < width)
    return torch.where(inside, kernel[offset.clamp(0, width - 1)], kernel.new_zeros(()))


def _banded_matmul(images: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Valid correlation along ``axis`` as GEMMs with a banded matrix, :data:`CHUNK` outputs at a time."""
    shape = images.shape
    halo = kernel.numel() - 1
    n_in = shape[axis]
    n_out = n_in - halo
    # (pre, n_in, post): a view, no copy for contiguous input
    cube = images.reshape(shape[:axis].numel(), n_in, shape[axis + 1 :].numel())
    weights = tuple(kernel.tolist())  # CPU only: no device sync
    full_band = _band(weights, min(CHUNK, n_out), kernel.dtype)
    blocks = []
    for start in range(0, n_out, CHUNK):  # loop over chunks of the axis (n / 128), not voxels
        size = min(CHUNK, n_out - start)
        band = full_band if size == full_band.shape[1] else _band(weights, size, kernel.dtype)
        window = cube[:, start : start + size + halo]  # (pre, size + 2r, post)
        if cube.shape[2] == 1:  # last axis: (pre, size + 2r) @ (size + 2r, size)
            blocks.append((window[..., 0] @ band)[..., None])
        else:  # (size, size + 2r) @ (pre, size + 2r, post), broadcast over pre
            blocks.append(band.T @ window)
    out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)  # (pre, n_out, post)
    return out.reshape(*shape[:axis], n_out, *shape[axis + 1 :])
