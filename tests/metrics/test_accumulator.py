"""MetricAccumulator: per-case values stay aligned; summary statistics ignore NaN cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from medxlate.errors import InputDataError
from medxlate.metrics import MetricAccumulator


def test_summary_matches_numpy_and_skips_nan() -> None:
    acc = MetricAccumulator()
    acc.update(ssim=torch.tensor([0.8, 0.9]), mae=torch.tensor([10.0, 20.0]))
    acc.update(ssim=[float("nan")], mae=[30.0])
    acc.update(ssim=0.7, mae=40.0)
    summary = acc.summary()
    ssim_cases = np.array([0.8, 0.9, 0.7], dtype=np.float32).astype(np.float64)  # float32 tensors
    expected = torch.tensor(
        [ssim_cases.mean(), ssim_cases.std(ddof=1), np.median(ssim_cases), 3, 1], dtype=torch.float64
    )
    actual = torch.tensor([summary["ssim"][k] for k in ("mean", "std", "median", "n", "n_nan")], dtype=torch.float64)
    assert_close(actual, expected, atol=1e-7, rtol=0.0)
    assert summary["mae"]["mean"] == 25.0
    assert len(acc.values["ssim"]) == 4


def test_inf_is_kept_and_single_case_std_is_nan() -> None:
    acc = MetricAccumulator()
    acc.update(psnr=torch.tensor([float("inf")]))
    summary = acc.summary()["psnr"]
    assert summary["mean"] == float("inf")
    assert math.isnan(summary["std"])


def test_misaligned_updates_raise() -> None:
    acc = MetricAccumulator()
    acc.update(ssim=[0.5], mae=[1.0])
    with pytest.raises(InputDataError, match="differ from the first update"):
        acc.update(ssim=[0.5])
    with pytest.raises(InputDataError, match="different numbers of cases"):
        acc.update(ssim=[0.5, 0.6], mae=[1.0])
