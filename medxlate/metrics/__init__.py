"""Image similarity metrics as pure torch functions: 2D/3D, batched, CPU or GPU, optionally masked.

``ssim`` reproduces scikit-image's Gaussian-weighted SSIM (Wang et al. 2004 settings); ``psnr``
matches ``skimage.metrics.peak_signal_noise_ratio``. ``data_range`` is always explicit.

Input layout (never guessed from the sizes): plain tensors and batched MetaTensors are
``(B, C, *spatial)`` with 2 or 3 spatial dims; each function averages channels per sample and
returns ``(B,)``. An unbatched MONAI ``MetaTensor`` (``is_batch`` False: what ``load_volume`` and
``Translator`` return) is one image ``(C, *spatial)``, as MONAI defines it; the result is then a
0-d tensor. Anything else (a 3-dim plain tensor, a 5-dim unbatched MetaTensor) is refused with an
``InputDataError``. A mask has the inputs' layout with batch/channel axes of size 1 allowed, and
exactly the images' spatial sizes.
"""

from __future__ import annotations

from medxlate.metrics.accumulator import MetricAccumulator
from medxlate.metrics.multiscale import ms_ssim
from medxlate.metrics.pixelwise import mae, psnr
from medxlate.metrics.structural import ssim
from medxlate.metrics.synthrad import synthrad2025

__all__ = ["MetricAccumulator", "mae", "ms_ssim", "psnr", "ssim", "synthrad2025"]
