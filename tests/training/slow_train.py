"""Test helper: ``medxlate`` CLI whose optimisation steps take at least 50 ms each.

Lets a test observe checkpoints and kill the process at chosen points mid-epoch; the arithmetic is
untouched (the step is the real one, followed by a sleep).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import medxlate.training.engine as engine
from medxlate.cli import main

_real_step = engine.train_step


def _slow_step(*args: Any, **kwargs: Any) -> Any:
    result = _real_step(*args, **kwargs)
    time.sleep(0.05)
    return result


if __name__ == "__main__":
    engine.train_step = _slow_step
    sys.argv = ["medxlate", *sys.argv[1:]]
    main()
