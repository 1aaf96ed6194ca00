"""Crash safety: SIGKILL mid-epoch and resume, SIGTERM, stale temporary files, incompatible resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from medxlate.checkpoint import load_checkpoint
from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.errors import CheckpointError, ConfigError, TrainingInterrupted
from medxlate.tracking import NullTracker
from medxlate.tracking.mlflow_tracker import MlflowTracker
from medxlate.tracking.resilient import ResilientTracker
from medxlate.training import fit
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH = 12  # 24 body slices in the two training phantoms, batch 2


@pytest.fixture
def dataset(paired_folder: Path, tmp_path: Path) -> Path:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    return tmp_path / "dataset"


def _config(dataset: Path, out: Path, store: str | None, **train: Any) -> dict[str, Any]:
    """Dropout and flips on, so that restoring every RNG state matters."""
    cfg = tiny_config(dataset, out, **{"epochs": 3, "decay_epochs": 1, "num_threads": 1, "log_every": 1, **train})
    cfg["data"].update(batch_size=2, flip_prob=0.5)
    cfg["model"]["generator_params"]["dropout"] = 0.5
    if store:
        cfg["tracking"] = {"backend": "mlflow", "tracking_uri": store, "log_images": False}
    return cfg


def _assert_same_weights(first: Path, second: Path) -> None:
    a, b = load_checkpoint(first), load_checkpoint(second)
    for network in ("generator", "discriminator"):
        for name, tensor in a[network].items():
            torch.testing.assert_close(b[network][name], tensor, rtol=0, atol=0, msg=f"{network}.{name}")


def _run_until(command: list[str], checkpoint: Path, stop_when: Callable[[dict[str, Any]], bool], sig: int) -> int:
    """Start training, load the checkpoint whenever it changes (it must always load), signal the
    process once ``stop_when(checkpoint)`` holds; returns the exit code."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, seen = time.monotonic() + 240, None
    try:
        while time.monotonic() < deadline and process.poll() is None:
            stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
            if stamp is not None and stamp != seen:
                seen = stamp
                if stop_when(load_checkpoint(checkpoint)):  # raises if a partial file were ever visible
                    process.send_signal(sig)
                    break
            for leftover in checkpoint.parent.glob("*.pt"):
                assert leftover.name in ("last.pt", "model.pt")  # model.pt: the final inference checkpoint
            time.sleep(0.005)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode is not None
    if process.returncode not in (-signal.SIGKILL, 128 + signal.SIGTERM):
        assert process.returncode == 0, stderr[-3000:]
    return process.returncode


def _mid_epoch(epoch: int, step: int) -> Callable[[dict[str, Any]], bool]:
    return lambda c: c["epoch"] == epoch and c["position"] > 0 and c["step"] >= step


def test_sigkilled_twice_mid_epoch_resumes_to_the_uninterrupted_weights(dataset: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    out, store = tmp_path / "run", f"sqlite:///{tmp_path}/mlflow.db"
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(_config(dataset, out, store, checkpoint_every=2)))
    reference = fit(validate_config(_config(dataset, tmp_path / "reference", None)))
    train = [sys.executable, str(REPO / "tests/training/slow_train.py"), "train", str(config)]
    checkpoint = out / "last.pt"

    assert _run_until(train, checkpoint, _mid_epoch(0, 4), signal.SIGKILL) == -signal.SIGKILL
    first = load_checkpoint(checkpoint)
    assert first["epoch"] == 0 and first["position"] > 0
    stale = out / ".last.pt.0123456789abcdef.tmp"  # what a kill during torch.save leaves behind
    stale.write_bytes(b"partial")
    assert _run_until([*train, "--resume"], checkpoint, _mid_epoch(1, 18), signal.SIGKILL) == -signal.SIGKILL
    assert not stale.exists()
    second = load_checkpoint(checkpoint)
    assert second["epoch"] == 1 and second["position"] > 0 and second["step"] > first["step"]
    assert _run_until([*train, "--resume"], checkpoint, lambda c: False, signal.SIGKILL) == 0

    _assert_same_weights(reference.checkpoint, checkpoint)
    final = load_checkpoint(checkpoint)
    assert (final["epoch"], final["position"], final["step"]) == (3, 0, 3 * STEPS_PER_EPOCH)
    client = MlflowClient(store)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "train/loss_g")]
    assert sorted(steps) == list(range(1, 3 * STEPS_PER_EPOCH + 1))  # every step once, none twice


class _SignalAt(ResilientTracker):
    """Sends this process SIGTERM when the metrics of ``step`` are logged."""

    def __init__(self, inner: Any, step: int) -> None:
        super().__init__(inner, retry_interval_s=0.05)
        self.signal_step = step

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        super().log_metrics(metrics, step)
        if step == self.signal_step and "train/loss_g" in metrics:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_checkpoints_ends_run_killed_and_resume_continues_the_run(dataset: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path}/mlflow.db"
    reference = fit(validate_config(_config(dataset, tmp_path / "reference", None, epochs=2, decay_epochs=1)))
    cfg = _config(dataset, tmp_path / "run", store, epochs=2, decay_epochs=1, checkpoint_every=100)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as stopped:
        fit(validate_config(cfg), _SignalAt(MlflowTracker(store), step=17))
    assert stopped.value.signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) is previous
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (saved["epoch"], saved["position"], saved["step"]) == (1, 5, 17)
    client = MlflowClient(store)
    run = client.get_run(saved["mlflow_run_id"])
    assert run.info.status == "KILLED"
    flushed = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_g")]
    assert sorted(flushed) == list(range(1, 18))  # buffered metrics up to the checkpoint were sent

    resumed = fit(validate_config({**cfg, "train": {**cfg["train"], "resume": "latest"}}), _tracker(store))
    assert resumed.run_id == run.info.run_id
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_g")]
    assert sorted(steps) == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    _assert_same_weights(reference.checkpoint, resumed.checkpoint)


def _tracker(store: str) -> ResilientTracker:
    return ResilientTracker(MlflowTracker(store), retry_interval_s=0.05)


def test_resume_when_the_run_is_not_in_the_store_starts_a_new_run(dataset: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    cfg = tiny_config(dataset, tmp_path / "run", epochs=2, decay_epochs=1, max_steps_per_epoch=2)
    first = fit(validate_config(cfg), _tracker(f"sqlite:///{tmp_path}/old.db"))
    other = f"sqlite:///{tmp_path}/new.db"
    resumed = fit(validate_config({**cfg, "train": {**cfg["train"], "epochs": 3, "resume": "latest"}}), _tracker(other))
    assert resumed.run_id != first.run_id
    run = MlflowClient(other).get_run(resumed.run_id)
    assert run.data.tags["medxlate.resumed_from_run"] == first.run_id
    assert run.data.tags["medxlate.resumed_at_step"] == "4"
    assert run.info.status == "FINISHED"


def test_resume_from_another_setup_names_the_differing_keys(dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_config(dataset, tmp_path / "run", epochs=1, decay_epochs=0, max_steps_per_epoch=1)
    fit(validate_config(cfg))
    other = {**cfg, "model": {**cfg["model"], "generator_params": {"num_downs": 3, "ngf": 8}}}
    other["train"] = {**cfg["train"], "lr": 1e-3, "resume": str(tmp_path / "run" / "last.pt"), "epochs": 2}
    with pytest.raises(CheckpointError) as error:
        fit(validate_config(other), NullTracker())
    message = str(error.value)
    assert "model.generator_params.ngf: checkpoint 4, config 8" in message
    assert "train.lr: checkpoint 0.0002, config 0.001" in message
    assert "generator down.0.0.weight: shape (4, 1, 4, 4) in the checkpoint, (8, 1, 4, 4) in the model" in message
    with pytest.raises(ConfigError, match=r"nope\.pt not found"):
        fit(validate_config({**cfg, "train": {**cfg["train"], "resume": str(tmp_path / "nope.pt")}}))
