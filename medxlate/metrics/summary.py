"""Per-case metric tables reduced to means, with non-finite values excluded loudly, never averaged.

A per-case metric can be undefined: NaN when its mask selects no voxel where the metric is defined
(e.g. a body mask that lies only inside SSIM's border strip), ``inf`` for the PSNR of identical
images. Such a value is not a score: it is left out of the mean, and a warning names the metric,
the cases and the value, so a summary never holds ``nan`` and never silently averages fewer cases.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseMeans:
    """Means over cases and what was left out of them.

    Attributes:
        means: Metric name -> mean over the cases where it is finite (metrics finite in no case are
            absent).
        excluded: Metric name -> ids of the cases whose value was NaN/inf (only metrics with some).
    """

    means: dict[str, float]
    excluded: dict[str, list[str]]


def finite_case_means(per_case: Mapping[str, Mapping[str, float]], context: str) -> CaseMeans:
    """Mean of each metric over the cases where it is finite; warn about every exclusion.

    Args:
        per_case: Case id -> metric name -> value (all cases carry the same names).
        context: What is summarised, for the warning (e.g. ``"evaluation of split 'val'"``).

    Returns:
        The means and the excluded cases per metric.
    """
    names = list(next(iter(per_case.values()), {}))
    means: dict[str, float] = {}
    excluded: dict[str, list[str]] = {}
    for name in names:
        values = {case: float(metrics[name]) for case, metrics in per_case.items()}
        finite = [v for v in values.values() if math.isfinite(v)]
        bad = [case for case, v in values.items() if not math.isfinite(v)]
        if bad:
            excluded[name] = bad
            shown = ", ".join(f"{case}={values[case]}" for case in bad[:5]) + (" ..." if len(bad) > 5 else "")
            outcome = f"mean over the other {len(finite)}" if finite else "metric not reported"
            logger.warning(
                "%s: %s is undefined (NaN/inf) for %d of %d cases (%s; an empty mask gives NaN, identical "
                "images give PSNR inf); excluded: %s",
                context,
                name,
                len(bad),
                len(values),
                shown,
                outcome,
            )
        if finite:
            means[name] = sum(finite) / len(finite)
    return CaseMeans(means=means, excluded=excluded)


#: Summary values that describe the reference data, not the model: the data range PSNR/SSIM use and the
#: ``ceiling_*`` scores of the noise-free target (simulated data). They are the same in every epoch and
#: for every model on a dataset, so trackers record them as params, not as metric curves.
REFERENCE_CONSTANTS = ("data_range", "ceiling_")


def split_reference_constants(values: Mapping[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """``(scores, constants)``: the model's scores, and the values describing the reference data
    (``data_range`` and ``ceiling_*``, :data:`REFERENCE_CONSTANTS`).

    Args:
        values: Metric name -> value (means of a validation or an evaluation).
    """
    scores, constants = {}, {}
    for name, value in values.items():
        is_constant = name == REFERENCE_CONSTANTS[0] or name.startswith(REFERENCE_CONSTANTS[1])
        (constants if is_constant else scores)[name] = value
    return scores, constants
