"""Build networks, optimisers and the learning-rate schedule from a config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from medxlate.config import ExperimentConfig
from medxlate.errors import ConfigError
from medxlate.inference import InferenceStrategy, SliceStrategy, SlidingWindowStrategy
from medxlate.training.steps import GanModules


def generator_spec(cfg: ExperimentConfig, in_channels: int) -> dict[str, Any]:
    """Everything needed to rebuild the generator (stored in checkpoints).

    X-ray -> CT: the views and the grid size come from the ``xray`` section (the generator's
    ``views`` and ``image_size``; setting them in ``model.generator_params`` too is refused).
    """
    params = dict(cfg.model.generator_params)
    if cfg.xray is not None:
        given = sorted(set(params) & {"views", "image_size"})
        if given:
            raise ConfigError(
                f"model.generator_params: {', '.join(given)} come from xray.views and xray.size; remove them"
            )
        params.update(views=list(cfg.xray.views), image_size=cfg.xray.size)
    return {
        "name": cfg.model.generator,
        "spatial_dims": cfg.data.spatial_dims,
        "in_channels": in_channels,
        "out_channels": 1,
        "params": params,
    }


def inference_strategy(cfg: ExperimentConfig) -> InferenceStrategy:
    """How validation and the Translator run the generator over a volume (stored in checkpoints).

    2D models translate slice by slice (with the 2.5D context); 3D models use overlapping
    ``eval.roi_size`` windows (default: the training ``data.patch_size``) blended with
    ``eval.blend_mode``.

    Raises:
        ConfigError: if a 3D model has neither a window size nor a patch size.
    """
    if cfg.data.spatial_dims == 2:
        return SliceStrategy(context_slices=cfg.data.context_slices, sw_batch_size=cfg.eval.sw_batch_size)
    roi_size = cfg.eval.roi_size or cfg.data.patch_size
    if roi_size is None:
        raise ConfigError("eval.roi_size: a 3D model needs a sliding-window size in voxels, e.g. [64, 64, 64]")
    return SlidingWindowStrategy(
        roi_size=tuple(roi_size),
        overlap=cfg.eval.overlap,
        mode=cfg.eval.blend_mode,
        sw_batch_size=cfg.eval.sw_batch_size,
    )


def build_gan(cfg: ExperimentConfig, in_channels: int, device: torch.device) -> tuple[GanModules, int]:
    """Generator + discriminator (both initialise themselves as pix2pix does) and Adam optimisers.

    Returns:
        The modules and the in-plane size multiple the generator needs (its total stride).

    Raises:
        ConfigError: for unknown model names or parameters.
    """
    from medxlate.models import build_discriminator, build_generator

    spec = generator_spec(cfg, in_channels)
    generator = build_generator(spec["name"], spec["spatial_dims"], in_channels, 1, **spec["params"])
    # the discriminator judges cat([source, target]), or the target alone when the views are not on its grid
    judged_channels = 1 if cfg.xray is not None else in_channels + 1
    discriminator = build_discriminator(
        cfg.model.discriminator, cfg.data.spatial_dims, judged_channels, **cfg.model.discriminator_params
    )
    generator.to(device)
    discriminator.to(device)
    betas = (cfg.train.beta1, cfg.train.beta2)
    fused = device.type == "cuda"  # one fused kernel per parameter group on CUDA
    modules = GanModules(
        generator=generator,
        discriminator=discriminator,
        optimizer_g=torch.optim.Adam(generator.parameters(), lr=cfg.train.lr, betas=betas, fused=fused),
        optimizer_d=torch.optim.Adam(discriminator.parameters(), lr=cfg.train.lr, betas=betas, fused=fused),
    )
    return modules, required_multiple(generator)


def required_multiple(generator: torch.nn.Module) -> int:
    """In-plane size multiple the generator needs (its ``required_multiple``; 1 if it has none).

    Raises:
        ConfigError: if the generator reports a multiple below 1.
    """
    multiple = int(getattr(generator, "required_multiple", 1))
    if multiple < 1:
        raise ConfigError(f"generator reports an invalid size multiple {multiple}")
    return multiple


def linear_decay(epochs: int, decay_epochs: int) -> Callable[[int], float]:
    """pix2pix schedule: factor 1 for ``epochs - decay_epochs`` epochs, then linearly down towards 0.

    With ``epochs=4, decay_epochs=2`` the factors for epochs 0..3 are 1, 1, 2/3, 1/3.
    """
    constant = epochs - decay_epochs

    def factor(epoch: int) -> float:
        if decay_epochs == 0 or epoch < constant:
            return 1.0
        return max(0.0, 1.0 - (epoch - constant + 1) / (decay_epochs + 1))

    return factor
