"""X-ray: cone-beam geometry, a differentiable DRR projector and the radiograph intensity domain.

Example:
    >>> import torch
    >>> from monai.data import MetaTensor
    >>> from medxlate import xray
    >>> mu = MetaTensor(torch.full((1, 8, 8, 8), 0.02), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    >>> g = xray.Geometry(sdd_mm=1000.0, sad_mm=800.0, detector_shape=(4, 4), pixel_mm=1.0, view="PA")
    >>> tuple(xray.line_integrals(mu, g).shape)
    (4, 4)
"""

from __future__ import annotations

from medxlate.xray.attenuation import MU_WATER_PER_MM, hu_to_mu, radiograph, transmission
from medxlate.xray.consistency import projection_consistency_loss, views_from_hu
from medxlate.xray.geometry import NAMED_VIEWS, Geometry
from medxlate.xray.projector import DEFAULT_SAMPLES_PER_VOXEL, line_integrals, project, volume_isocentre
from medxlate.xray.radiograph_domain import DomainCheck, check_radiograph
from medxlate.xray.radiographs import Radiograph, load_radiograph, to_detector_domain

__all__ = [
    "DEFAULT_SAMPLES_PER_VOXEL",
    "MU_WATER_PER_MM",
    "NAMED_VIEWS",
    "DomainCheck",
    "Geometry",
    "Radiograph",
    "check_radiograph",
    "hu_to_mu",
    "line_integrals",
    "load_radiograph",
    "project",
    "projection_consistency_loss",
    "radiograph",
    "to_detector_domain",
    "transmission",
    "views_from_hu",
    "volume_isocentre",
]
