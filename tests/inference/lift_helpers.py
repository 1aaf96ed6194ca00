"""X-ray -> CT test material: a tiny lift strategy, checkpoints as training writes them, a phantom CT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor

from medxlate.checkpoint import save_checkpoint
from medxlate.inference import LiftStrategy, strategy_to_dict
from medxlate.models.x2ct import X2CTGenerator
from medxlate.tasks import get_task
from medxlate.transforms import Preprocessing
from tests.conftest import phantom, tiny_affine

SIZE = 16
FOV_MM = 32.0  # the conftest phantom spans 30 x 30 x 36 mm: it covers >= 90% of the field
WINDOW = (-1024.0, 2048.0)


def lift_strategy(views: tuple[str, ...] = ("PA",)) -> LiftStrategy:
    """16^3 voxels of 2 mm, detector 16 x 16 pixels of 2.5 mm (magnification 1.25)."""
    return LiftStrategy(views=views, size=SIZE, fov_mm=FOV_MM, sdd_mm=1000.0, sad_mm=800.0)


def lift_preprocessing() -> Preprocessing:
    """The xray2ct task with a [-1024, 2048] HU window."""
    return Preprocessing(WINDOW, (0.5, 99.5), target_range=WINDOW, task=get_task("xray2ct"))


def lift_payload(views: tuple[str, ...] = ("PA",), seed: int = 0, config: dict[str, Any] | None = None) -> dict:
    """A checkpoint payload as training writes it, with a randomly initialised (seeded) X2CT generator."""
    torch.manual_seed(seed)
    params = {"views": list(views), "image_size": SIZE, "num_downs": 2, "ngf": 4}
    generator = X2CTGenerator(3, 1, 1, **params)
    return {
        "generator": generator.state_dict(),
        "generator_spec": {"name": "x2ct", "spatial_dims": 3, "in_channels": 1, "out_channels": 1, "params": params},
        "preprocessing": lift_preprocessing().to_dict(),
        "inference": strategy_to_dict(lift_strategy(views)),
        "source_modality": "XR",
        "target_modality": "CT",
        "config": config or {"name": "tiny-xray"},
    }


def write_lift_checkpoint(path: Path, views: tuple[str, ...] = ("PA",), **kwargs: Any) -> Path:
    """Save :func:`lift_payload` to ``path``."""
    return save_checkpoint(lift_payload(views, **kwargs), path)


def phantom_ct(seed: int = 0) -> MetaTensor:
    """The conftest CT phantom (HU) on its LAS, anisotropic affine, as ``load_volume`` returns it."""
    ct, _, _ = phantom(seed)
    return MetaTensor(torch.from_numpy(ct.astype("float32"))[None], affine=torch.from_numpy(tiny_affine()))
