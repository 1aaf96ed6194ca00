"""A thin accumulator of per-case metric values for evaluation loops."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from medxlate.errors import InputDataError


class MetricAccumulator:
    """Collects per-case values of several metrics and summarises them.

    Cases stay aligned across metrics: every :meth:`update` must give the same metric names with
    the same number of cases. Values move to the host here (the one sync point of an evaluation
    loop), as Python floats.

    Example::

        acc = MetricAccumulator()
        for pred, target in batches:
            acc.update(ssim=ssim(pred, target, data_range=2.0, spatial_dims=2), mae=mae(pred, target, spatial_dims=2))
        acc.summary()  # {"ssim": {"mean": ..., "std": ..., "median": ..., "n": ..., "n_nan": ...}, ...}
    """

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = {}

    def update(self, **metrics: torch.Tensor | float | Sequence[float]) -> None:
        """Append one batch of cases.

        Args:
            **metrics: Metric name to a ``(B,)`` tensor, a sequence of B floats, or one float.

        Raises:
            InputDataError: if the names differ from the first update's, or the metrics give
                different numbers of cases.
        """
        batch = {name: _as_floats(value) for name, value in metrics.items()}
        if self._values and set(batch) != set(self._values):
            raise InputDataError(
                f"MetricAccumulator.update: metrics {sorted(batch)} differ from the first update's "
                f"{sorted(self._values)}"
            )
        sizes = {name: len(values) for name, values in batch.items()}
        if len(set(sizes.values())) > 1:
            raise InputDataError(f"MetricAccumulator.update: metrics give different numbers of cases: {sizes}")
        for name, values in batch.items():
            self._values.setdefault(name, []).extend(values)

    @property
    def values(self) -> dict[str, list[float]]:
        """Per-case values of each metric, in update order (a copy)."""
        return {name: list(values) for name, values in self._values.items()}

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean, sample standard deviation (ddof=1) and median per metric, ignoring NaN cases.

        NaN values (e.g. an empty mask) are left out and counted in ``n_nan``; ``inf`` values (PSNR of
        identical images) are kept, so a mean can be ``inf``. Statistics of fewer than one (std: two)
        values are NaN.

        Returns:
            ``{metric: {"mean", "std", "median", "n", "n_nan"}}``.
        """
        out: dict[str, dict[str, float]] = {}
        for name, values in self._values.items():
            kept = np.array([v for v in values if not math.isnan(v)], dtype=np.float64)
            n = kept.size
            with np.errstate(invalid="ignore"):  # inf - inf in std is NaN, as it should be
                out[name] = {
                    "mean": float(kept.mean()) if n else math.nan,
                    "std": float(kept.std(ddof=1)) if n > 1 else math.nan,
                    "median": float(np.median(kept)) if n else math.nan,
                    "n": n,
                    "n_nan": len(values) - n,
                }
        return out


def _as_floats(value: torch.Tensor | float | Sequence[float]) -> list[float]:
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.detach().reshape(-1).cpu().tolist()]
    if isinstance(value, Sequence):
        return [float(v) for v in value]
    return [float(value)]
