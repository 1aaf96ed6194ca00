"""Fixtures for the model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_intra_op_thread() -> Iterator[None]:
    """Run each model test on one intra-op thread, then restore the previous setting.

    The tensors here are tiny, so threading only adds overhead; on a busy 2-core machine OpenMP
    threads contending with other processes made a 32x32 U-Net step take ~1.5 s instead of ~10 ms.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
