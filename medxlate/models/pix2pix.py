"""Generators trained with the pix2pix/CycleGAN reference implementation, as medxlate generators.

junyanz/pytorch-CycleGAN-and-pix2pix saves a generator as a plain state dict
(``latest_net_G.pth``, ``<epoch>_net_G_A.pth``...). :func:`from_pix2pix` builds the medxlate
generator of the same architecture (``unet_128``/``unet_256``: the registry's ``unet`` with 7/8
levels; ``resnet_6blocks``/``resnet_9blocks``: its ``resnet`` with 6/9 blocks), renames the keys by
structure and loads them strictly. Nothing is unpickled: the file is read with
``torch.load(weights_only=True)``.

Key names are derived from the medxlate model itself, not from a table: the reference nests one
``UnetSkipConnectionBlock`` per level whose ``model`` is ``down layers + [inner block] + up layers``,
which are exactly the layers of our ``down[i]`` and ``up[i]``; the ResNet generator is built with
the reference's own layer order, so its keys are the reference's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.instancenorm import _InstanceNorm

from medxlate.errors import CheckpointError, ConfigError
from medxlate.models.registry import did_you_mean
from medxlate.models.resnet import ResNetGenerator
from medxlate.models.unet import UNetGenerator

__all__ = ["NETGS", "ImportedGenerator", "from_pix2pix", "import_pix2pix_generator", "reference_module_names"]

# The reference's --netG choices -> (medxlate registry name, the parameters that make it that architecture)
NETGS: dict[str, tuple[str, dict[str, Any]]] = {
    "unet_128": ("unet", {"num_downs": 7}),
    "unet_256": ("unet", {"num_downs": 8}),
    "resnet_6blocks": ("resnet", {"n_blocks": 6}),
    "resnet_9blocks": ("resnet", {"n_blocks": 9}),
}
IMPORT_NORMS = ("batch", "instance")
# Dropout probabilities to try, in order: a U-Net's dropout layers hold no weights (its keys are the same
# either way: pix2pix's 0.5 is recorded); a ResNet block's dropout layer shifts the index of its second conv.
_DROPOUTS = (0.5, 0.0)
_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
_SHOWN = 6  # keys listed in a mismatch message


@dataclass(frozen=True)
class ImportedGenerator:
    """A reference generator loaded into medxlate, with the spec that rebuilds it.

    Attributes:
        module: The generator, weights loaded, in eval mode.
        spec: ``name``, ``spatial_dims``, ``in_channels``, ``out_channels`` and ``params``, as a
            medxlate checkpoint's ``generator_spec``.
    """

    module: nn.Module
    spec: dict[str, Any]


def _unet_names(generator: UNetGenerator) -> dict[str, str]:
    """medxlate module name -> reference module name, for every layer of a U-Net.

    Level 0's block is ``model.model``; each deeper block sits in its parent's ``model`` right after
    the parent's down layers. In a block, the up layers follow the down layers and the inner block
    (the innermost level has none).
    """
    names: dict[str, str] = {}
    prefix = "model.model"
    for level, (down, up) in enumerate(zip(generator.down, generator.up, strict=True)):
        has_inner = level < generator.num_downs - 1
        names.update({f"down.{level}.{j}": f"{prefix}.{j}" for j in range(len(down))})
        first_up = len(down) + int(has_inner)
        names.update({f"up.{level}.{j}": f"{prefix}.{first_up + j}" for j in range(len(up))})
        prefix = f"{prefix}.{len(down)}.model"
    return names


def reference_module_names(generator: nn.Module) -> dict[str, str]:
    """Map each layer of a medxlate generator to its module name in the reference implementation.

    Args:
        generator: A :class:`~medxlate.models.UNetGenerator` or :class:`~medxlate.models.ResNetGenerator`.

    Returns:
        ``{medxlate module name: reference module name}`` for every named submodule with state.

    Raises:
        ConfigError: for another generator type.
    """
    if isinstance(generator, UNetGenerator):
        return _unet_names(generator)
    if isinstance(generator, ResNetGenerator):  # built in the reference's layer order: same names
        return {name: name for name, _ in generator.named_modules() if name}
    raise ConfigError(f"generator {type(generator).__name__} has no pix2pix reference counterpart")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The reference's state dict, ``module.`` prefixes (``DataParallel``) removed."""
    from medxlate.checkpoint import load_torch_file

    content = load_torch_file(path)
    if not isinstance(content, Mapping) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise CheckpointError(f"{path}: not a generator state dict (expected a mapping of parameter names to tensors)")
    return {key.removeprefix("module."): value for key, value in content.items()}


def _mapped(generator: nn.Module, reference: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The reference tensors under medxlate keys, and the problems found (missing/unexpected/shapes).

    As the reference's loader does, running statistics an old PyTorch saved for instance norms
    (which track none) are dropped, and a batch norm's missing ``num_batches_tracked`` (PyTorch
    < 0.4.1) is taken from the fresh model: it does not change what the model computes in eval mode.
    """
    names = reference_module_names(generator)
    own = generator.state_dict()
    key_of = {key: f"{names[key.rpartition('.')[0]]}.{key.rpartition('.')[2]}" for key in own}
    instance_norms = {names[name] for name, module in generator.named_modules() if isinstance(module, _InstanceNorm)}
    expected = set(key_of.values())
    given = {
        key: value
        for key, value in reference.items()
        if not (key.rpartition(".")[0] in instance_norms and key.endswith(_RUNNING_STATS))
    }
    missing = sorted(k for k in expected - given.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(given.keys() - expected)
    problems = [f"missing keys ({len(missing)}): {_listed(missing)}"] if missing else []
    problems += [f"unexpected keys ({len(unexpected)}): {_listed(unexpected)}"] if unexpected else []
    mapped = {key: given.get(ref, own[key]) for key, ref in key_of.items()}
    problems += [
        f"{key_of[key]} has shape {tuple(mapped[key].shape)}, expected {tuple(own[key].shape)}"
        for key in own
        if mapped[key].shape != own[key].shape
    ][:_SHOWN]
    return mapped, problems


def _listed(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")


def import_pix2pix_generator(
    path: str | Path,
    netG: str,  # noqa: N803 -- the reference's option name
    norm: str,
    input_nc: int,
    output_nc: int,
    ngf: int = 64,
) -> ImportedGenerator:
    """Load a reference generator state dict into the matching medxlate generator (2D).

    Args:
        path: The ``.pth`` file the reference saved (``latest_net_G.pth``, ``latest_net_G_A.pth``...).
        netG: The reference's ``--netG``: ``unet_128``, ``unet_256``, ``resnet_6blocks``, ``resnet_9blocks``.
        norm: The reference's ``--norm``: ``batch`` or ``instance``.
        input_nc: The reference's ``--input_nc``.
        output_nc: The reference's ``--output_nc``.
        ngf: The reference's ``--ngf``.

    Returns:
        The generator (eval mode) and its medxlate spec.

    Raises:
        ConfigError: for an unknown ``netG`` or ``norm``.
        CheckpointError: if the file is not a safe state dict, or its keys or shapes are not those of
            the stated architecture (naming the missing and unexpected keys).
    """
    from medxlate.models import build_generator

    if netG not in NETGS:
        raise ConfigError(f"netG {netG!r}:{did_you_mean(netG, NETGS)} expected one of: {', '.join(NETGS)}")
    if norm not in IMPORT_NORMS:
        raise ConfigError(f"norm {norm!r}:{did_you_mean(norm, IMPORT_NORMS)} expected one of: batch, instance")
    path = Path(path)
    reference = _read_state_dict(path)
    name, arch = NETGS[netG]
    first_problems: list[str] = []
    for dropout in _DROPOUTS:
        params = {**arch, "ngf": ngf, "norm": norm, "dropout": dropout}
        generator = build_generator(name, 2, input_nc, output_nc, **params)
        mapped, problems = _mapped(generator, reference)
        if not problems:
            break
        first_problems = first_problems or problems
    else:  # report against the reference's default (pix2pix: with dropout)
        raise CheckpointError(
            f"{path}: not a pix2pix '{netG}' generator with norm '{norm}', input_nc {input_nc}, output_nc "
            f"{output_nc}, ngf {ngf}: " + "; ".join(first_problems)
        )
    generator.load_state_dict(mapped, strict=True)
    spec = {"name": name, "spatial_dims": 2, "in_channels": input_nc, "out_channels": output_nc, "params": params}
    return ImportedGenerator(generator.eval(), spec)


def from_pix2pix(
    path: str | Path,
    netG: str = "unet_256",  # noqa: N803 -- the reference's option name
    norm: str = "batch",
    input_nc: int = 3,
    output_nc: int = 3,
    ngf: int = 64,
) -> nn.Module:
    """A generator trained with junyanz/pytorch-CycleGAN-and-pix2pix, as a medxlate ``torch.nn.Module``.

    The defaults are the reference's pix2pix defaults; pass what the model was trained with.

    Args:
        path: The ``.pth`` state dict the reference saved.
        netG: ``unet_128``, ``unet_256``, ``resnet_6blocks`` or ``resnet_9blocks``.
        norm: ``batch`` or ``instance``.
        input_nc: Input channels.
        output_nc: Output channels.
        ngf: Channels of the first layer.

    Returns:
        The generator in eval mode (inputs in [-1, 1], outputs in [-1, 1], as in the reference).

    Raises:
        ConfigError: for an unknown ``netG`` or ``norm``.
        CheckpointError: if the file is unsafe or unreadable, or does not hold that architecture
            (the message names the missing and unexpected keys).

    Example:
        >>> from medxlate.models import from_pix2pix
        >>> g = from_pix2pix("latest_net_G.pth", netG="unet_256", input_nc=1, output_nc=1)  # doctest: +SKIP
    """
    return import_pix2pix_generator(path, netG, norm, input_nc, output_nc, ngf).module
