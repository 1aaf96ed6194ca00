"""Distributed training: two processes on CPU with gloo under torchrun, and bad environments."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from medxlate.data.prepare import prepare_dataset
from medxlate.errors import ConfigError
from medxlate.training.runtime import start_runtime, torchrun_env
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_train_identical_replicas_one_run_one_checkpoint(paired_folder: Path, tmp_path: Path) -> None:
    import mlflow

    prepare_dataset(paired_folder, tmp_path / "dataset")
    out, store = tmp_path / "run", f"sqlite:///{tmp_path}/mlflow.db"
    cfg = tiny_config(tmp_path / "dataset", out, epochs=2, decay_epochs=0, num_threads=1, log_every=1)
    cfg["data"]["batch_size"] = 4  # 2 slices per rank and step
    cfg["model"]["generator_params"]["norm"] = "instance"  # the documented DDP-on-CPU setting
    cfg["model"]["discriminator_params"]["norm"] = "instance"
    cfg["tracking"] = {"backend": "mlflow", "tracking_uri": store}
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO), "DUMP_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}", str(REPO / "tests/training/ddp_worker.py"), "train", str(config),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("checkpoint:") == 1  # console output from rank 0 only
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    saved = torch.load(out / "last.pt", weights_only=True)
    for network in ("generator", "discriminator"):
        for name, tensor in rank0[network].items():
            torch.testing.assert_close(rank1[network][name], tensor, rtol=0, atol=0)
            torch.testing.assert_close(saved[network][name], tensor, rtol=0, atol=0)
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["last.pt", "model.pt"]  # + inference
    assert saved["world_size"] == 2 and len(saved["rng_states"]) == 2
    client = mlflow.tracking.MlflowClient(store)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["medxlate.world_size"] == "2"
    history = client.get_metric_history(runs[0].info.run_id, "train/loss_g_l1")
    steps = [m.step for m in history]
    assert steps == sorted(set(steps)) and len(steps) == saved["step"]  # one value per step, no duplicates
    values = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert sum(values[-3:]) / 3 < sum(values[:3]) / 3  # the L1 loss goes down


def test_partial_torchrun_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="WORLD_SIZE set but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT missing"):
        torchrun_env()
    env = {"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "x", "MASTER_PORT": "1"}
    with pytest.raises(ConfigError, match="RANK=2, LOCAL_RANK=0, WORLD_SIZE=2"):
        torchrun_env(env)
    with pytest.raises(ConfigError, match="MASTER_PORT='http' is not an integer"):
        torchrun_env({**env, "RANK": "0", "MASTER_PORT": "http"})
    assert torchrun_env({}) is None


def _set_torchrun(monkeypatch: pytest.MonkeyPatch, rank: int, port: int) -> None:
    values = {"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": 2, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    for name, value in values.items():
        monkeypatch.setenv(name, str(value))


def test_batch_size_not_divisible_across_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_torchrun(monkeypatch, 0, _free_port())
    with pytest.raises(ConfigError, match=r"data.batch_size: 5 .* 2 processes"):
        start_runtime("cpu", batch_size=5)
    assert not torch.distributed.is_initialized()


def test_unreachable_rendezvous_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()  # nobody listens there: rank 1 waits for a rank 0 that never comes
    _set_torchrun(monkeypatch, 1, port)
    with pytest.raises(ConfigError, match=f"rendezvous at 127.0.0.1:{port} failed for rank 1 of 2"):
        start_runtime("cpu", batch_size=4, timeout_s=1.0)
    assert not torch.distributed.is_initialized()
