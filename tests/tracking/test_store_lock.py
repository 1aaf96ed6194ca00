"""Concurrent first runs on a fresh SQLite MLflow store (issue 6, item 9): real processes, one barrier."""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path
from typing import Any

from medxlate.tracking.store import sqlite_path

_PROCESSES = 2


def _first_run(uri: str, barrier: Any, errors: Any) -> None:
    try:
        from medxlate.tracking.mlflow_tracker import MlflowTracker

        barrier.wait(60)
        tracker = MlflowTracker(uri)
        tracker.start("race", "run", {}, {})
        tracker.end()
    except BaseException:  # report everything to the parent
        errors.put(traceback.format_exc())


def test_concurrent_first_runs_on_a_fresh_store(tmp_path: Path) -> None:
    import mlflow  # noqa: F401  (imported once here; the forked children share it)
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    context = multiprocessing.get_context("fork")
    barrier, errors = context.Barrier(_PROCESSES), context.Queue()
    processes = [context.Process(target=_first_run, args=(uri, barrier, errors)) for _ in range(_PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    failures = [errors.get(timeout=5) for _ in range(errors.qsize())]
    assert failures == []
    assert [p.exitcode for p in processes] == [0] * _PROCESSES
    runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("race").experiment_id])
    assert len(runs) == _PROCESSES
    assert not (tmp_path / "mlflow.db.lock").exists()


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:////tmp/a/mlflow.db") == Path("/tmp/a/mlflow.db")
    assert sqlite_path("sqlite:///mlflow.db?timeout=5") == Path("mlflow.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("http://localhost:5000") is None
