"""A checkpoint write the system refuses (full disk, quota) is one clean error naming the file; the old one survives."""

from __future__ import annotations

import resource
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from medxlate.checkpoint import save_checkpoint
from tests.conftest import tiny_config
from tests.test_cli import run_cli
from tests.test_cli_errors import assert_one_error_line

# What PyTorch's own file writer raises when the disk fills during torch.save(obj, path).
WRITER_FAILED = (
    "[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file data/0: file write failed"
)


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes fail in the kernel (EFBIG), as a full disk fails them (ENOSPC)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python's default: the write returns the error
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def _writer_failure(*args: object, **kwargs: object) -> None:
    raise RuntimeError(WRITER_FAILED)


def test_refused_write_keeps_the_old_checkpoint_and_names_the_cause(tmp_path: Path) -> None:
    path = save_checkpoint({"weights": torch.zeros(8)}, tmp_path / "last.pt")
    old = path.read_bytes()
    with file_size_limit(64 * 1024), pytest.raises(OSError) as caught:
        save_checkpoint({"weights": torch.zeros(100_000)}, path)  # 400 kB
    assert (caught.value.filename, caught.value.strerror) == (str(path), "cannot write (File too large)")
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left


def test_pytorch_writer_failure_is_an_os_error_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint({"weights": torch.zeros(8)}, tmp_path / "last.pt")
    old = path.read_bytes()
    monkeypatch.setattr(torch, "save", _writer_failure)
    with pytest.raises(OSError) as caught:
        save_checkpoint({"weights": torch.ones(8)}, path)
    assert caught.value.filename == str(path)
    assert caught.value.strerror == "cannot write (PytorchStreamWriter failed writing file data/0: file write failed)"
    assert isinstance(caught.value.__cause__, OSError) and isinstance(caught.value.__cause__.__cause__, RuntimeError)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_other_runtime_errors_of_torch_save_are_not_reported_as_write_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug, not a write failure")

    monkeypatch.setattr(torch, "save", bug)
    with pytest.raises(RuntimeError, match="a bug, not a write failure"):
        save_checkpoint({"weights": torch.ones(8)}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_train_on_a_full_disk_is_one_error_line(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    finished = cli_checkpoint[0].parent
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    old = (run / "last.pt").read_bytes()
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(tiny_config(finished.parent / "dataset", run, epochs=2, decay_epochs=0)))
    with file_size_limit(len(old) // 2):
        code, out, err = run_cli(monkeypatch, capsys, "train", str(config), "--resume")
    assert (code, out) == (1, ""), err
    assert_one_error_line(err, f"error: {run / 'last.pt'}: cannot write (File too large)")
    assert (run / "last.pt").read_bytes() == old
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
