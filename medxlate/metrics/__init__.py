"""Image similarity metrics as pure torch functions: 2D/3D, batched, CPU or GPU, optionally masked.

``ssim`` reproduces scikit-image's Gaussian-weighted SSIM (Wang et al. 2004 settings); ``psnr``
matches ``skimage.metrics.peak_signal_noise_ratio``. Every function takes ``(B, C, *spatial)``
tensors, averages channels per sample and returns ``(B,)``. ``data_range`` is always explicit.
"""

from __future__ import annotations

from medxlate.metrics.accumulator import MetricAccumulator
from medxlate.metrics.pixelwise import mae, psnr
from medxlate.metrics.structural import ssim

__all__ = ["MetricAccumulator", "mae", "psnr", "ssim"]
