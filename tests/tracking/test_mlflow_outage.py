"""A real ``mlflow server`` on loopback stopped and restarted mid-run: training neither stops nor
loses a checkpoint, and every metric arrives once the server is back (slow: server start-up)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from medxlate.checkpoint import load_checkpoint
from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.tracking.mlflow_tracker import MlflowTracker
from medxlate.tracking.resilient import ResilientTracker
from medxlate.training import fit
from tests.conftest import tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port, self.process = folder, port, None

    def start(self, wait: bool = True) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--backend-store-uri", f"sqlite:///{self.folder}/mlflow.db", "--workers", "1"]
        self.process = subprocess.Popen(
            command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if wait:
            self.wait_healthy()

    def wait_healthy(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError("mlflow server did not start")

    def stop(self) -> None:
        """Stop the server and its workers (uvicorn, job runners: one process group)."""
        if self.process is not None:
            group = os.getpgid(self.process.pid)
            os.killpg(group, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)  # workers that ignore SIGTERM
            self.process.wait(timeout=15)
            self.process = None


class _OutageAt(ResilientTracker):
    """Stops the server when step ``down`` is logged and starts it again (in the background) at ``up``."""

    def __init__(self, inner: Any, server: _Server, down: int, up: int) -> None:
        super().__init__(inner, retry_interval_s=0.5, drain_timeout_s=180)
        self.server, self.down, self.up = server, down, up

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        super().log_metrics(metrics, step)
        if "train/loss_g" in metrics and step == self.down:
            self.server.stop()
        if "train/loss_g" in metrics and step == self.up:
            self.server.start(wait=False)


@pytest.mark.slow
def test_training_survives_a_stopped_and_restarted_mlflow_server(
    paired_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")  # a refused connection fails at once anyway
    prepare_dataset(paired_folder, tmp_path / "dataset")
    server = _Server(tmp_path, _free_port())
    server.start()
    uri = f"http://127.0.0.1:{server.port}"
    try:
        cfg = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=3, decay_epochs=1, checkpoint_every=2)
        cfg["data"]["batch_size"] = 2
        cfg["train"]["log_every"] = 1
        tracker = _OutageAt(MlflowTracker(uri), server, down=4, up=20)
        with caplog.at_level(logging.WARNING, logger="medxlate.tracking.resilient"):
            result = fit(validate_config(cfg), tracker)
        assert load_checkpoint(result.checkpoint)["epoch"] == 3  # every checkpoint written despite the outage
        failures = [r for r in caplog.records if "tracking call failed" in r.getMessage()]
        assert len(failures) == 1
        server.wait_healthy()
        client = MlflowClient(uri)
        steps = sorted(m.step for m in client.get_metric_history(result.run_id, "train/loss_g"))
        assert steps == list(range(1, 37))
        assert [m.step for m in client.get_metric_history(result.run_id, "val/ssim")] == [1, 2, 3]
        assert client.get_run(result.run_id).info.status == "FINISHED"
    finally:
        server.stop()
