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


class OutputError(MedxlateError):
    """An output location is unsafe: writing there would replace an input, a file medxlate does not
    own, or another run's work (see :mod:`medxlate.io.guard`)."""


class FolderLockedError(OutputError):
    """Another process is writing into the same output folder or dataset (see :mod:`medxlate.io.lock`)."""


class RegistryError(MedxlateError, KeyError):
    """An unknown name was looked up in a model/loss registry."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGTERM/SIGINT after saving a resumable checkpoint (not an input error).

    Attributes:
        signum: The signal received.
        checkpoint: The checkpoint written before stopping (``None`` on ranks other than 0).
    """

    def __init__(self, signum: int, checkpoint: object | None) -> None:
        import signal

        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DeviceMemoryError",
    "FolderLockedError",
    "GeometryError",
    "InputDataError",
    "MedxlateError",
    "NonFiniteError",
    "OutputError",
    "RegistryError",
    "TrainingInterrupted",
]
