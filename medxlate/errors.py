"""Exception hierarchy of medxlate.

Every error raised for bad user input is a :class:`MedxlateError`, so the CLI can print it as one
clear line instead of a traceback. Messages name the file or parameter, what was found and what was
expected; the original exception is chained with ``raise ... from``.
"""

from __future__ import annotations


class MedxlateError(Exception):
    """Base class of all errors medxlate raises for bad input or unusable state."""


class ConfigError(MedxlateError, ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


class InputDataError(MedxlateError, ValueError):
    """An input file or folder is missing, unreadable or holds unexpected content."""


class GeometryError(InputDataError):
    """Image geometry (affine, spacing, orientation, shape) is inconsistent or unsupported."""


class CheckpointError(MedxlateError):
    """A checkpoint is missing, corrupt, or does not match what is asked of it."""


class DeviceMemoryError(MedxlateError):
    """A computation does not fit in the device's memory even at its smallest batch."""


class NonFiniteError(MedxlateError):
    """A model produced NaN/inf where a finite result is required (diverged weights, overflow).

    Such a result is never written or reported as a value.
    """


class RegistryError(MedxlateError, KeyError):
    """An unknown name was looked up in a model/loss registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DeviceMemoryError",
    "GeometryError",
    "InputDataError",
    "MedxlateError",
    "NonFiniteError",
    "RegistryError",
]
