"""Bounded numeric types for config fields: sizes a real user never exceeds, absurd values refused by name.

A size such as ``batch_size: 100000000000000000000000000`` or a voxel spacing of ``1e-9`` mm would
otherwise pass validation and fail later in an allocator with a traceback. Each bound here is far
above any published setting and the message names the allowed range::

    'data.batch_size': expected an integer in [1, 4096] (found 100000000000000000000000000)
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError


def between(low: float, high: float, kind: type[int] | type[float] = int) -> Any:
    """An ``int`` (or ``float``) field type restricted to ``[low, high]``.

    Args:
        low: Smallest allowed value.
        high: Largest allowed value.
        kind: ``int`` or ``float``.

    Returns:
        An ``Annotated`` type usable as a pydantic field annotation (also inside tuples).
    """
    noun = "an integer" if kind is int else "a number"

    def check(value: float) -> float:
        if not low <= value <= high:  # also refuses NaN
            raise PydanticCustomError(
                "out_of_range", "expected {noun} in [{low}, {high}]", {"noun": noun, "low": low, "high": high}
            )
        return value

    return Annotated[kind, AfterValidator(check)]


BatchSize = between(1, 4096)  # slices, patches or windows per forward pass
Voxels = between(1, 1024)  # one side of a patch or sliding window
Spacing = between(0.01, 100.0, float)  # a voxel spacing in mm (micro-CT to thick-slice MR)
Count = between(1, 100_000)  # epochs, items per volume, optimiser iterations
Workers = between(0, 256)  # processes
Threads = between(1, 1024)
