"""Hold a medxlate folder lock in a real second process (forked, so nothing is imported again)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medxlate.io.lock import folder_lock

_TIMEOUT_S = 60.0


def _hold(folder: str, purpose: str, ready: Any, release: Any) -> None:
    with folder_lock(folder, purpose):
        ready.set()
        release.wait(_TIMEOUT_S)


@contextmanager
def held_by_another_process(folder: Path, purpose: str = "holder in test") -> Iterator[Any]:
    """Lock ``folder`` in a child process for the duration of the block; yields the process.

    The caller may ``kill()`` the process inside the block (a crashed holder).
    """
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    process = context.Process(target=_hold, args=(str(folder), purpose, ready, release))
    process.start()
    try:
        if not ready.wait(_TIMEOUT_S):
            raise RuntimeError("the lock-holding child process did not start")
        yield process
    finally:
        if process.is_alive():  # a killed child may have died holding the event's internal lock
            release.set()
        process.join(_TIMEOUT_S)
