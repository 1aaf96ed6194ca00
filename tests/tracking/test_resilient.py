"""The resilient tracker: records leave only at commit, outages are survived and reported once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from medxlate.tracking.mlflow_tracker import MlflowTracker
from medxlate.tracking.resilient import ResilientTracker


class _Outage:
    """Wraps a client method: raises ConnectionError while ``down`` is set."""

    def __init__(self, method: Any) -> None:
        self.method, self.down, self.failed = method, False, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            self.failed += 1
            raise ConnectionError("Connection refused")
        return self.method(*args, **kwargs)


def test_outage_is_reported_once_and_records_arrive_after_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = f"sqlite:///{tmp_path}/mlflow.db"
    inner = MlflowTracker(store)
    tracker = ResilientTracker(inner, retry_interval_s=0.02, drain_timeout_s=10)
    run_id = tracker.start("exp", "run", {"a": "1"}, {})
    outage = _Outage(inner._client.log_batch)
    inner._client.log_batch = outage
    client = MlflowClient(store)

    tracker.log_metrics({"loss": 1.0}, step=1)
    assert tracker.wait(1.0) and client.get_metric_history(run_id, "loss") == []  # nothing before commit
    outage.down = True
    with caplog.at_level(logging.WARNING, logger="medxlate.tracking.resilient"):
        for step in range(1, 6):
            tracker.log_metrics({"loss": float(step)}, step=step + 1)
            tracker.commit()  # returns at once: training is never blocked by the outage
        assert not tracker.wait(0.3) and outage.failed >= 2
        assert len(tracker.undelivered()) == 6
        outage.down = False
        assert tracker.wait(5.0)
    failures = [r for r in caplog.records if "tracking call failed" in r.getMessage()]
    assert len(failures) == 1 and "Connection refused" in failures[0].getMessage()
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert tracker.undelivered() == []
    tracker.end("FINISHED")
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    assert history == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 3.0), (5, 4.0), (6, 5.0)]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_end_during_an_outage_gives_up_after_the_drain_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inner = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")
    tracker = ResilientTracker(inner, retry_interval_s=0.02, drain_timeout_s=0.3)
    tracker.start("exp", "run", {}, {})
    inner._client.log_batch = _Outage(inner._client.log_batch)
    inner._client.log_batch.down = True
    tracker.log_metrics({"loss": 1.0}, step=1)
    with caplog.at_level(logging.ERROR, logger="medxlate.tracking.resilient"):
        tracker.end("KILLED")  # returns; does not raise
    assert "2 call(s) (metrics, and closing the run as KILLED) could not be delivered" in caplog.text


def test_resend_is_idempotent_in_the_store(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = ResilientTracker(MlflowTracker(store), retry_interval_s=0.02)
    run_id = tracker.start("exp", "run", {}, {})
    tracker.log_metrics({"loss": 2.0}, step=3)
    backlog = tracker.undelivered()
    tracker.commit()
    assert tracker.wait(5.0)
    tracker.resend(backlog)  # what a resume replays from a checkpoint's backlog
    tracker.end("FINISHED")
    assert [(m.step, m.value) for m in MlflowClient(store).get_metric_history(run_id, "loss")] == [(3, 2.0)]
