"""CLI failure modes: each ends in one ``error:`` line and a meaningful exit code, never a traceback."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.conftest import tiny_affine, tiny_config
from tests.test_cli import run_cli

REPO = Path(__file__).resolve().parents[1]


def assert_one_error_line(err: str, expected: str) -> None:
    """Apart from progress bars, stderr is a single ``error:`` line containing ``expected``."""
    lines = [line for line in err.splitlines() if line.strip() and not re.search(r"\d+%\|", line)]
    assert lines == [lines[0]] and lines[0].startswith("error: "), err
    assert expected in lines[0], err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["translate", "model.pt"], "Missing argument 'input_path'. (see 'medxlate translate --help')"),
        (["frobnicate"], "No such command 'frobnicate'. (see 'medxlate --help')"),
        (["scan", "--frob", "x"], "No such option: --frob (see 'medxlate scan --help')"),
        (["scan", ".", "--identifiers"], "--identifiers: only applies to --json output"),
    ],
)
def test_usage_errors_are_one_line(
    args: list[str], expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert_one_error_line(err, expected)


def test_version_and_help_show_plain_flags(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from medxlate import __version__

    code, out, _ = run_cli(monkeypatch, capsys, "--version")
    assert (code, out) == (0, f"medxlate {__version__}\n")
    for command in ("scan", "prepare", "verify", "train", "evaluate", "translate"):
        code, out, _ = run_cli(monkeypatch, capsys, command, "--help")
        assert code == 0 and "--json" in out, command
        assert "--no-json" not in out and "<bool>" not in out, out


@pytest.mark.parametrize(
    "device, expected",
    [
        ("gpu", "device 'gpu': unknown; expected auto, cpu, cuda, cuda:N or mps"),
        ("cuda", "device 'cuda': "),
        ("meta", "device 'meta': unsupported type 'meta'"),
    ],
)
def test_bad_device_is_one_line(
    device: str,
    expected: str,
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    checkpoint, source = cli_checkpoint
    out_path = tmp_path / "out.nii.gz"
    code, _, err = run_cli(
        monkeypatch, capsys, "translate", str(checkpoint), str(source), str(out_path), "--device", device
    )
    assert code == 2
    assert_one_error_line(err, expected)
    assert not out_path.exists()


def test_cuda_without_cuda_names_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from medxlate.errors import ConfigError
    from medxlate.inference import resolve_device

    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(ConfigError, match=r"device 'cuda': this PyTorch \(.*\) is built without CUDA"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match=r"device 'cuda:1': 1 CUDA GPU\(s\) visible"):
        resolve_device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")


def test_file_that_is_not_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("hello, not a model\n")
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(text), "ct.nii.gz", str(tmp_path / "o.nii.gz"))
    assert code == 2
    assert_one_error_line(err, f"{text}: not a readable checkpoint (not a PyTorch file, or corrupt or truncated")


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("generator_spec", "unet", "checkpoint field 'generator_spec' is a str, expected a mapping"),
        ("config", ["tiny"], "checkpoint field 'config' is a list, expected a mapping"),
        ("preprocessing", 3, "checkpoint field 'preprocessing' is a int, expected a mapping"),
        ("generator_spec.params", [4], "checkpoint field 'generator_spec.params' is a list, expected a mapping"),
        ("generator_spec.in_channels", "1", "checkpoint field 'generator_spec.in_channels' is a str, expected a int"),
        ("generator_spec.name", None, "checkpoint has no 'generator_spec.name' field"),
    ],
)
def test_checkpoint_fields_of_the_wrong_type(
    field: str,
    value: object,
    expected: str,
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint, source = cli_checkpoint
    content = torch.load(checkpoint, weights_only=True)
    holder, key = (content["generator_spec"], field.split(".")[1]) if "." in field else (content, field)
    if value is None:
        del holder[key]
    else:
        holder[key] = value
    broken = tmp_path / "broken.pt"
    torch.save(content, broken)
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(broken), str(source), str(tmp_path / "o.nii.gz"))
    assert code == 2
    assert_one_error_line(err, f"{broken}: {expected}")


def test_four_d_nifti_names_file_and_shape(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint, _ = cli_checkpoint
    four_d = tmp_path / "dynamic.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 24, 12, 2), np.float32), tiny_affine()), str(four_d))
    out_path = tmp_path / "o.nii.gz"
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(four_d), str(out_path))
    assert code == 2
    assert_one_error_line(
        err,
        f"{four_d}: image of shape (2, 20, 24, 12) (channel first) has 2 channels or time points; "
        "expected a single 3D volume (1, X, Y, Z)",
    )
    assert not out_path.exists()


def test_translator_refuses_wrong_rank_before_the_generator(cli_checkpoint: tuple[Path, Path]) -> None:
    from monai.data import MetaTensor

    from medxlate.errors import GeometryError
    from medxlate.inference import Translator

    translator = Translator.from_checkpoint(cli_checkpoint[0], device="cpu")
    with pytest.raises(GeometryError, match=r"input volume: image of shape \(20, 24, 12\) .* 2 spatial dimensions"):
        translator(MetaTensor(torch.zeros(20, 24, 12)))


def test_full_disk_names_the_output(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import medxlate.io.atomic as atomic

    def no_space(path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(atomic, "_fsync", no_space)
    checkpoint, source = cli_checkpoint
    out_path = tmp_path / "out" / "syn.nii.gz"
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(source), str(out_path))
    assert code == 1
    assert_one_error_line(err, f"error: {out_path}: cannot write (No space left on device)")
    assert list((tmp_path / "out").iterdir()) == []  # no temporary file left behind


def test_unwritable_output_location(
    cli_checkpoint: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    checkpoint, source = cli_checkpoint
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = run_cli(monkeypatch, capsys, "translate", str(checkpoint), str(source), str(blocker / "o.nii.gz"))
    assert code == 1
    assert_one_error_line(err, f"error: {blocker}: ")


def test_unknown_loss_fails_before_any_run_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    raw = tiny_config(tmp_path / "ds", tmp_path / "run")
    raw["tracking"] = {"backend": "mlflow"}
    raw["loss"] = {"adversarial": "lsgn"}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, _, err = run_cli(monkeypatch, capsys, "train", str(config))
    assert code == 2
    assert "'loss.adversarial': unknown adversarial loss 'lsgn', did you mean 'lsgan'?" in err
    assert not store.exists() and not (tmp_path / "run").exists()  # no MLflow run, nothing written


INTERRUPTED_VERIFY = """
import signal, sys, time, types
# Python turns SIGINT into KeyboardInterrupt only if SIGINT was not ignored when it started; a
# background job of a non-interactive shell (CI, a loaded test runner) inherits it ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
fake = types.ModuleType("medxlate.data")
def verify_dataset(path):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    print("ready", file=sys.stderr, flush=True)  # inside the command, the handler installed
    time.sleep(60)  # until interrupted
fake.verify_dataset = verify_dataset
sys.modules["medxlate.data"] = fake
sys.argv = ["medxlate", "verify", "some_dataset"]
from medxlate.cli import main
main()
"""


def test_ctrl_c_exits_130() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Start the child with SIGINT ignored, as a background job is: it must not depend on how pytest was started.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", INTERRUPTED_VERIFY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().strip() == "ready"  # blocks until the child is in the command
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert out == "" and err.strip() == "error: interrupted"
