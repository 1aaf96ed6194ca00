"""Progress on stderr: a live bar on a terminal, one plain line per finished item anywhere else.

Redirected to a file (a log, a batch job, CI), a tqdm bar writes every redraw: a demo log held 77 kB
of them. So every progress display goes through this module: on a terminal it is a tqdm bar; off a
terminal, :func:`track` writes one line per case or volume, and the bars over steps (training
batches) and over slices or windows (MONAI's inferers) stay silent, training logging one line per
epoch instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["on_terminal", "show_bar", "step_bar", "track"]


def on_terminal() -> bool:
    """Whether stderr, where progress goes, is an interactive terminal."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def show_bar(requested: bool) -> bool:
    """Whether a live bar is drawn: asked for, and stderr is a terminal (for ``progress=`` flags of MONAI)."""
    return requested and on_terminal()


def track(items: Iterable[T], *, desc: str, unit: str, enabled: bool = True) -> Iterator[T]:
    """Iterate over ``items`` with progress on stderr.

    On a terminal a tqdm bar; elsewhere one line per finished item, e.g.
    ``evaluate val: 3/10 cases (41.2 s)`` (no item names: they may come from patient folders).

    Args:
        items: What to iterate over (its length, when it has one, is shown).
        desc: What is being done, e.g. ``"evaluate val"``.
        unit: The item, singular (``"case"``, ``"volume"``).
        enabled: ``False`` shows nothing.

    Yields:
        The items, unchanged.
    """
    if not enabled:
        yield from items
        return
    if on_terminal():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
        return
    of = f"/{len(items)}" if isinstance(items, Sized) else ""
    start = time.perf_counter()
    for done, item in enumerate(items, 1):
        yield item  # the line is written once the caller has finished with the item
        sys.stderr.write(f"{desc}: {done}{of} {unit}s ({time.perf_counter() - start:.1f} s)\n")
        sys.stderr.flush()


def step_bar(total: int, *, desc: str, initial: int = 0, enabled: bool = True) -> Any:
    """A transient bar over steps (e.g. the batches of a training epoch), drawn on a terminal only.

    Off a terminal the bar is disabled (its ``update``/``set_postfix``/``close`` do nothing) and the
    caller reports once per larger unit (training logs one line per epoch).

    Args:
        total: Steps in all.
        desc: Shown before the bar.
        initial: Steps already done (a resumed epoch).
        enabled: ``False`` shows nothing (e.g. on every rank but the first).

    Returns:
        A ``tqdm`` instance.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=not show_bar(enabled),
    )
