"""Graceful stop on SIGTERM/SIGINT: finish the current step, checkpoint, close the run as KILLED.

SLURM, Kubernetes and ``timeout`` send SIGTERM before killing a job; Ctrl-C sends SIGINT. While
training, the first such signal only sets a flag that the loop checks after each optimisation step;
the loop then writes a checkpoint, flushes the tracker, ends the MLflow run with status KILLED and
raises :class:`TrainingInterrupted`. A second signal aborts at once (KeyboardInterrupt).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from medxlate.errors import TrainingInterrupted

__all__ = ["STOP_SIGNALS", "StopRequest", "TrainingInterrupted"]

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Context manager catching SIGTERM/SIGINT as a request to stop at the next step boundary.

    Handlers are installed only in the main thread (Python allows no other) and restored on exit.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a stop signal has arrived."""
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting without a checkpoint")
        self.signum = signum
        logger.warning("%s received: saving a checkpoint after this step", signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
