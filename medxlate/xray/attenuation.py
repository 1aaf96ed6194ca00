"""Intensity models around the projector: HU -> linear attenuation, line integrals -> radiograph.

Energy assumption: one effective photon energy of about 70 keV (a diagnostic chest spectrum at
100-120 kVp after filtration). Water's linear attenuation there is ``MU_WATER_PER_MM = 0.0192 / mm``
(NIST XCOM: 0.1929 cm^2/g at 70 keV, density 1 g/cm^3). Attenuation scales linearly with HU
(``μ = μ_water (1 + HU / 1000)``, clamped at 0 below air), the definition of the Hounsfield
scale at the CT's own effective energy; beam hardening and the different energy dependence of bone
are not modelled (a monoenergetic DRR).

A processed radiograph shows attenuation bright (bone white). :func:`radiograph` turns line
integrals ``L = -ln(I / I0)`` (the log-transformed transmission, what a detector's log amplifier
delivers) into the display domain by a per-image percentile window mapped to ``[0, 1]``.
"""

from __future__ import annotations

import torch

from medxlate.errors import ConfigError

__all__ = ["MU_WATER_PER_MM", "hu_to_mu", "radiograph", "transmission"]

MU_WATER_PER_MM = 0.0192


def hu_to_mu(hu: torch.Tensor, mu_water: float = MU_WATER_PER_MM) -> torch.Tensor:
    """Linear attenuation per mm from Hounsfield units (monoenergetic, linear in HU).

    Args:
        hu: CT values in HU, any shape (a MetaTensor keeps its affine).
        mu_water: water's attenuation per mm at the assumed effective energy.

    Returns:
        ``mu_water * (1 + hu / 1000)``, clamped at 0 (HU below -1000 are air).
    """
    return (mu_water * (1.0 + hu / 1000.0)).clamp(min=0.0)


def transmission(line_integral: torch.Tensor) -> torch.Tensor:
    """Transmitted fraction ``I / I0 = exp(-L)`` (Beer-Lambert)."""
    return torch.exp(-line_integral)


def radiograph(
    line_integral: torch.Tensor, low_percentile: float = 0.5, high_percentile: float = 99.5
) -> tuple[torch.Tensor, dict[str, float]]:
    """Map line integrals to a processed-radiograph look: bone bright, window to ``[0, 1]``.

    The window is per image: the ``low``/``high`` percentiles of ``L`` over the image map to 0 and 1
    and values outside are clipped; the same mapping is what a real radiograph goes through in
    :mod:`medxlate.xray.radiographs`, so both land in one domain.

    Args:
        line_integral: ``(..., H, W)`` line integrals (one image per leading index).
        low_percentile: percentile mapped to 0.
        high_percentile: percentile mapped to 1.

    Returns:
        ``(image in [0, 1], record)`` where ``record`` holds the percentiles used (for provenance);
        for a batch, the record holds the first image's window.

    Raises:
        ConfigError: if the percentiles are not ``0 <= low < high <= 100``.
    """
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise ConfigError(
            f"radiograph: percentiles ({low_percentile}, {high_percentile}); expected 0 <= low < high <= 100"
        )
    flat = line_integral.reshape(-1, line_integral.shape[-2] * line_integral.shape[-1]).float()
    q = torch.tensor([low_percentile / 100.0, high_percentile / 100.0], device=flat.device)
    lo_hi = torch.quantile(flat, q, dim=1)  # (2, N)
    lo = lo_hi[0].reshape(*line_integral.shape[:-2], 1, 1).to(line_integral.dtype)
    hi = lo_hi[1].reshape(*line_integral.shape[:-2], 1, 1).to(line_integral.dtype)
    image = ((line_integral - lo) / (hi - lo).clamp(min=1e-6)).clamp(0.0, 1.0)
    record = {
        "low_percentile": float(low_percentile),
        "high_percentile": float(high_percentile),
        "low_value": float(lo_hi[0, 0].detach()),
        "high_value": float(lo_hi[1, 0].detach()),
    }
    return image, record
