"""Image similarity metrics as pure torch functions: 2D/3D, batched, CPU or GPU, optionally masked.

``ssim`` reproduces scikit-image's Gaussian-weighted SSIM (Wang et al. 2004 settings); ``psnr``
matches ``skimage.metrics.peak_signal_noise_ratio``. ``data_range`` is always explicit.

Input layout (never guessed from the sizes): ``spatial_dims=2`` or ``3`` (as in MONAI's metrics)
reads ``(B, C, *spatial)`` as a batch and ``(C, *spatial)`` as one image. Without it, an unbatched
MONAI ``MetaTensor`` (``is_batch`` False: what ``load_volume`` and ``Translator`` return) is one
image ``(C, *spatial)``, as MONAI defines it, a batched MetaTensor is ``(B, C, *spatial)`` and a
plain 5-dim tensor is a 3D batch; a plain 4-dim tensor (a 2D batch or one volume, e.g.
``torch.from_numpy(array)[None]``) is refused with an ``InputDataError`` asking for
``spatial_dims``. Each function averages channels per sample and returns ``(B,)``, or a 0-d tensor
for one image. A mask has the inputs' layout with batch/channel axes of size 1 allowed, and
exactly the images' spatial sizes.
"""

from __future__ import annotations

from medxlate.metrics.accumulator import MetricAccumulator
from medxlate.metrics.multiscale import ms_ssim
from medxlate.metrics.pixelwise import mae, psnr
from medxlate.metrics.structural import ssim
from medxlate.metrics.synthrad import synthrad2025

__all__ = ["MetricAccumulator", "mae", "ms_ssim", "psnr", "ssim", "synthrad2025"]
