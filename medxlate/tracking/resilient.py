"""A tracker wrapper that survives tracking outages and never makes training wait on the network.

Records are held until :meth:`ResilientTracker.commit`, which the training loop calls right after a
checkpoint is on disk ("checkpoint first, log after"): a run killed between two checkpoints has
sent nothing past its last checkpoint, so resuming from it logs no metric step twice. Committed
records go, in order, to a background thread that calls the wrapped tracker; when a call fails
(server down, network gone) the failure is reported once, training goes on, and the same call is
retried every ``retry_interval_s`` until it succeeds. :meth:`end` waits at most ``drain_timeout_s``
for the backlog before closing the run.

Metrics keep the timestamp of their first logging. :meth:`undelivered` lists those not yet
confirmed; the training loop stores them in each checkpoint and :meth:`resend` replays them after a
resume, so a SIGKILL between a checkpoint and the delivery of its records loses nothing (MLflow's
SQL stores ignore an identical metric row sent twice).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medxlate.tracking.base import Tracker

logger = logging.getLogger(__name__)


Record = tuple[dict[str, float], int, int]  # metrics, step, timestamp (ms) fixed when first logged


class _MetricsDelivery:
    """Hand metrics to the wrapped tracker once, then flush it (the flush alone is retried)."""

    def __init__(self, owner: ResilientTracker, records: list[Record]) -> None:
        self.owner, self.records, self.handed = owner, records, False

    def __call__(self) -> None:
        inner = self.owner.inner
        if not self.handed:
            for metrics, step, stamp in self.records:
                # the values are buffered before a failing automatic flush, which is retried below
                with contextlib.suppress(Exception):
                    if self.owner.keeps_timestamps:
                        inner.log_metrics(metrics, step, timestamp_ms=stamp)  # type: ignore[call-arg]
                    else:
                        inner.log_metrics(metrics, step)
            self.handed = True
        flush = getattr(inner, "flush", None)
        if flush is not None:
            flush()
        self.owner.delivered(self.records)


class ResilientTracker:
    """Wrap a tracker: buffer until :meth:`commit`, deliver in the background, retry on failure.

    Args:
        inner: The tracker that talks to the store (e.g. :class:`MlflowTracker`).
        retry_interval_s: Pause between retries of a failed call.
        drain_timeout_s: How long :meth:`end` waits for undelivered records.
    """

    def __init__(self, inner: Tracker, retry_interval_s: float = 10.0, drain_timeout_s: float = 20.0) -> None:
        self.inner = inner
        self.retry_interval_s = retry_interval_s
        self.drain_timeout_s = drain_timeout_s
        self._metrics: list[Record] = []
        self._unconfirmed: list[Record] = []
        self._lock = threading.Lock()
        self.keeps_timestamps = "timestamp_ms" in inspect.signature(inner.log_metrics).parameters
        self._calls: list[Callable[[], None]] = []
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self._closing = threading.Event()
        self.failures = 0
        self._worker = threading.Thread(target=self._deliver, name="medxlate-tracking", daemon=True)
        self._worker.start()

    @property
    def run_id(self) -> str | None:  # type: ignore[override]
        """The wrapped tracker's run id."""
        return self.inner.run_id

    def start(
        self,
        experiment: str,
        run_name: str,
        params: dict[str, str],
        tags: dict[str, str],
        resume_run_id: str | None = None,
    ) -> str | None:
        """Open the run synchronously (before any training work, so errors surface at once)."""
        return self.inner.start(experiment, run_name, params, tags, resume_run_id=resume_run_id)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Hold metrics until the next :meth:`commit`."""
        self._metrics.append(({k: float(v) for k, v in metrics.items()}, int(step), int(time.time() * 1000)))

    def undelivered(self) -> list[Record]:
        """Metrics logged but not confirmed delivered (held, queued or being retried), oldest first."""
        with self._lock:
            return [*self._unconfirmed, *self._metrics]

    def resend(self, records: list[Record]) -> None:
        """Queue metrics again (from a checkpoint's backlog); identical rows are ignored by the store."""
        batch = [({k: float(v) for k, v in m.items()}, int(step), int(stamp)) for m, step, stamp in records]
        if batch:
            self._queue_metrics(batch)

    def delivered(self, records: list[Record]) -> None:
        """Called by the delivery thread once ``records`` reached the store."""
        with self._lock:
            done = {id(record) for record in records}
            self._unconfirmed = [record for record in self._unconfirmed if id(record) not in done]

    def _queue_metrics(self, records: list[Record]) -> None:
        with self._lock:
            self._unconfirmed.extend(records)
        self._calls.append(_MetricsDelivery(self, records))

    def log_params(self, params: dict[str, str]) -> None:
        """Hold params until the next :meth:`commit`."""
        values = dict(params)
        self._hold(lambda: self.inner.log_params(values))

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """Hold an image until the next :meth:`commit`."""
        self._hold(lambda: self.inner.log_image(image, key=key, step=step))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Hold an artifact upload until the next :meth:`commit`."""
        self._hold(lambda: self.inner.log_artifact(path, artifact_path))

    def log_dataset(self, name: str, digest: str, source: str, context: str) -> None:
        """Hold a dataset input until the next :meth:`commit`."""
        self._hold(lambda: self.inner.log_dataset(name, digest, source, context))

    def log_table(self, columns: dict[str, list[object]], artifact_file: str) -> None:
        """Hold a table artifact until the next :meth:`commit`."""
        self._hold(lambda: self.inner.log_table(columns, artifact_file))

    def _hold(self, call: Callable[[], None]) -> None:
        if self._metrics:  # keep the order in which things were logged
            self._queue_metrics(self._metrics)
            self._metrics = []
        self._calls.append(call)

    def commit(self) -> None:
        """Send everything held so far (call after the checkpoint that covers it is on disk)."""
        if self._metrics:
            self._queue_metrics(self._metrics)
            self._metrics = []
        for call in self._calls:
            self._queue.put(call)
        self._calls = []

    def flush(self) -> None:
        """Same as :meth:`commit` (the Tracker-style name)."""
        self.commit()

    def discard(self) -> None:
        """Drop records not yet committed (they belong to steps no checkpoint covers)."""
        self._metrics, self._calls = [], []

    @property
    def backlog(self) -> int:
        """Committed calls not delivered yet."""
        return self._queue.unfinished_tasks

    def wait(self, timeout_s: float) -> bool:
        """Wait until every committed call is delivered; True if it was within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def end(self, status: str = "FINISHED") -> None:
        """Deliver what was committed, then close the run with ``status``; never raises on an outage."""
        self.commit()
        self._queue.put(lambda: self.inner.end(status))
        if not self.wait(self.drain_timeout_s):
            logger.error(
                "tracking: %d call(s) (metrics, and closing the run as %s) could not be delivered within %.0f s; "
                "the checkpoint on disk is complete",
                self.backlog,
                status,
                self.drain_timeout_s,
            )
        self._closing.set()

    def _deliver(self) -> None:
        while True:
            call = self._queue.get()
            failing = False
            while True:
                try:
                    call()
                except Exception as e:  # any tracking failure must not stop training
                    self.failures += 1
                    if not failing:
                        logger.warning(
                            "tracking call failed (%s: %s); training goes on, retrying every %.3g s",
                            type(e).__name__,
                            str(e).splitlines()[0][:200] if str(e) else "",
                            self.retry_interval_s,
                        )
                        failing = True
                    if self._closing.wait(self.retry_interval_s):
                        break
                    continue
                if failing:
                    logger.warning("tracking reachable again; delayed records delivered")
                break
            self._queue.task_done()
