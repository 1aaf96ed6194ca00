"""Small shared pieces of model construction: argument validation and normalisation choices.

Layers themselves come from MONAI's dimension-generic factories (``Conv/Norm/Act[..., spatial_dims]``);
this module only maps our config vocabulary (``norm="batch" | "instance" | "none"``) onto them and
validates constructor arguments with errors that name the model, the parameter and the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.layers.factories import Norm, Pad
from torch import nn

from medxlate.errors import ConfigError, GeometryError
from medxlate.models.registry import did_you_mean

__all__ = [
    "NORMS",
    "SIZE_LIMITS",
    "check_input",
    "check_int",
    "check_probability",
    "check_size",
    "check_size_params",
    "check_spatial_dims",
    "conv_bias",
    "make_norm",
    "monai_norm_name",
    "reflection_pad",
]

# Config value -> MONAI Norm factory key (None = no normalisation layer at all).
NORMS: dict[str, str | None] = {"batch": Norm.BATCH, "instance": Norm.INSTANCE, "none": None}


def monai_norm_name(norm: str, model: str) -> str | None:
    """Validate ``norm`` and return the MONAI ``Norm`` factory key for it.

    Args:
        norm: one of ``"batch"``, ``"instance"``, ``"none"``.
        model: model name used in the error message.

    Returns:
        ``Norm.BATCH``, ``Norm.INSTANCE`` or ``None`` for ``"none"``.

    Raises:
        ConfigError: if ``norm`` is not one of the accepted values.
    """
    if isinstance(norm, str) and norm in NORMS:
        return NORMS[norm]
    hint = did_you_mean(norm, NORMS) if isinstance(norm, str) else ""
    raise ConfigError(f"{model}: parameter 'norm' got {norm!r};{hint} expected one of: {', '.join(NORMS)}")


def make_norm(norm: str, spatial_dims: int, channels: int) -> nn.Module | None:
    """Instantiate the normalisation layer for ``norm`` (already validated), or ``None``.

    Instance norm follows pix2pix: ``affine=False, track_running_stats=False`` (the PyTorch and
    MONAI defaults), which is why convolutions before it keep their bias.

    Args:
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        spatial_dims: 1, 2 or 3.
        channels: number of feature channels.

    Returns:
        The layer, or ``None`` when ``norm == "none"``.
    """
    key = NORMS[norm]
    return None if key is None else Norm[key, spatial_dims](channels)


_REFLECTION_PADS = (nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d)
if "REFLECTIONPAD" not in Pad.names:  # MONAI's Pad factory has replication and constant padding only

    @Pad.factory_function("reflectionpad")
    def _reflection_pad_factory(dim: int) -> type[nn.Module]:
        """Reflection padding layers in 1, 2, 3 dimensions (``ReflectionPad{dim}d``)."""
        return _REFLECTION_PADS[dim - 1]


def reflection_pad(spatial_dims: int, padding: int) -> nn.Module:
    """A reflection padding layer of ``padding`` voxels on every side, from MONAI's ``Pad`` factory.

    Args:
        spatial_dims: 1, 2 or 3.
        padding: voxels added before and after every spatial axis.

    Returns:
        ``ReflectionPad{spatial_dims}d(padding)``.
    """
    return Pad["reflectionpad", spatial_dims](padding)


def conv_bias(norm: str) -> bool:
    """Whether a convolution followed by ``norm`` should have a bias.

    Batch norm has its own learnable shift, so the bias is redundant (pix2pix: ``use_bias = False``).
    Instance norm in pix2pix has no affine parameters, so the bias is kept. With no normalisation a
    bias is needed too. (The pix2pix reference drops it for ``"none"``, a side effect of comparing
    the norm class with ``InstanceNorm2d``; we keep it, as an un-normalised conv should have one.)

    Args:
        norm: ``"batch"``, ``"instance"`` or ``"none"``.

    Returns:
        ``True`` unless ``norm == "batch"``.
    """
    return norm != "batch"


def check_spatial_dims(spatial_dims: int, model: str) -> int:
    """Validate ``spatial_dims`` (1, 2 or 3, as supported by MONAI's layer factories).

    Args:
        spatial_dims: number of spatial dimensions.
        model: model name used in the error message.

    Returns:
        ``spatial_dims`` unchanged.

    Raises:
        ConfigError: if it is not 1, 2 or 3.
    """
    if isinstance(spatial_dims, bool) or spatial_dims not in (1, 2, 3):
        raise ConfigError(f"{model}: parameter 'spatial_dims' got {spatial_dims!r}; expected 1, 2 or 3")
    return spatial_dims


def check_int(value: int, name: str, model: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Validate an integer hyper-parameter lies in ``[minimum, maximum]``.

    Args:
        value: the value received.
        name: parameter name for the message.
        model: model name for the message.
        minimum: smallest allowed value.
        maximum: largest allowed value, or ``None`` for no upper bound.

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: if ``value`` is not an int or is out of range.
    """
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
        raise ConfigError(f"{model}: parameter '{name}' got {value!r}; expected {bound}")
    return value


# Allowed range of the size hyper-parameters the registered models share: far above any published setting
# (pix2pix: ngf = ndf = 64, num_downs = 8, max_mult = 8), low enough that an absurd value (ngf: 100000000)
# is refused by name instead of failing in the allocator. Checked at config load and by the constructors.
SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "ngf": (1, 512),
    "ndf": (1, 512),
    "max_mult": (1, 16),
    "num_downs": (2, 12),
}


def check_size(value: int, name: str, model: str) -> int:
    """Validate a size hyper-parameter (a key of :data:`SIZE_LIMITS`) lies in its allowed range.

    Args:
        value: the value received.
        name: parameter name, a key of :data:`SIZE_LIMITS`.
        model: model name for the message.

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: if ``value`` is not an int or is out of range.
    """
    low, high = SIZE_LIMITS[name]
    return check_int(value, name, model, minimum=low, maximum=high)


def check_size_params(params: Mapping[str, Any], model: str) -> None:
    """Check every size hyper-parameter present in ``params`` (others are left to the builder).

    Raises:
        ConfigError: naming the first parameter out of range.
    """
    for name in sorted(SIZE_LIMITS.keys() & params.keys()):
        check_size(params[name], name, model)


def check_probability(value: float, name: str, model: str) -> float:
    """Validate a dropout probability in ``[0, 1)``.

    Args:
        value: the value received.
        name: parameter name for the message.
        model: model name for the message.

    Returns:
        ``float(value)``.

    Raises:
        ConfigError: if ``value`` is not a real number in ``[0, 1)`` (NaN included).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.0 <= value < 1.0):
        raise ConfigError(f"{model}: parameter '{name}' got {value!r}; expected a number in [0, 1)")
    return float(value)


def check_input(
    x: torch.Tensor, spatial_dims: int, in_channels: int, model: str, multiple: int = 1, minimum: int = 1
) -> None:
    """Check a network input is ``(B, in_channels, *spatial)`` with usable spatial sizes.

    Args:
        x: the input tensor.
        spatial_dims: expected number of spatial dimensions.
        in_channels: expected channel count.
        model: model name for the message.
        multiple: every spatial size must be a multiple of this.
        minimum: every spatial size must be at least this.

    Raises:
        GeometryError: if the rank, channel count or a spatial size does not fit, naming the shape
            received and what is required.
    """
    shape = tuple(x.shape)
    if x.ndim != spatial_dims + 2 or shape[1] != in_channels:
        raise GeometryError(
            f"{model}: input shape {shape} does not match (batch, {in_channels}, "
            f"{', '.join(['size'] * spatial_dims)}) for spatial_dims={spatial_dims}"
        )
    spatial: Sequence[int] = shape[2:]
    if any(s % multiple for s in spatial) or any(s < minimum for s in spatial):
        need = [f"a multiple of {multiple}"] if multiple > 1 else []
        need += [f"at least {minimum}"] if minimum > 1 else []
        fix = "pad it, e.g. with monai.transforms.DivisiblePad" if multiple > 1 else "pad it"
        raise GeometryError(
            f"{model}: input spatial size {tuple(spatial)} (input shape {shape}) is not supported; "
            f"every spatial size must be {' and '.join(need)} ({fix})"
        )
