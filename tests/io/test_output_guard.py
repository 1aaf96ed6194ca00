"""The output guard (no output may be an input) and folder locks held by real processes (issue 6, items 8-9)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medxlate.errors import FolderLockedError, OutputError
from medxlate.io.guard import guard_output
from medxlate.io.lock import LOCK_NAME, folder_lock
from tests.lock_helpers import held_by_another_process


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "x.nii.gz"
    path.parent.mkdir()
    path.write_bytes(b"irreplaceable")
    return path


def test_same_path_symlink_and_hard_link_are_refused(scan: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(scan.parent)
    (scan.parent / "link.nii.gz").symlink_to(scan)
    os.link(scan, scan.parent.parent / "hard.nii.gz")
    for output in (scan, Path("x.nii.gz"), Path("../in/./x.nii.gz"), Path("link.nii.gz"), Path("../hard.nii.gz")):
        with pytest.raises(OutputError, match=rf"output {output}: it is the input .*x\.nii\.gz itself"):
            guard_output(output, [scan], "output")
    assert scan.read_bytes() == b"irreplaceable"


def test_outputs_inside_or_around_an_input_folder_are_refused(scan: Path, tmp_path: Path) -> None:
    series = scan.parent
    with pytest.raises(OutputError, match="lies inside the input folder"):
        guard_output(series / "out.nii.gz", [series], "output")
    with pytest.raises(OutputError, match="is a folder holding the input"):
        guard_output(tmp_path, [scan], "output")
    os.link(scan, tmp_path / "copy.nii.gz")  # a hard link elsewhere of a file of the input folder
    with pytest.raises(OutputError, match=r"hard link of the input file .*x\.nii\.gz"):
        guard_output(tmp_path / "copy.nii.gz", [series], "output")


def test_unrelated_outputs_pass(scan: Path, tmp_path: Path) -> None:
    assert guard_output(tmp_path / "out" / "y.nii.gz", [scan, None], "output") == (tmp_path / "out" / "y.nii.gz")
    (tmp_path / "plain.nii.gz").write_bytes(b"old output")  # an existing, unrelated file may be replaced
    assert guard_output(tmp_path / "plain.nii.gz", [scan.parent], "output") == tmp_path / "plain.nii.gz"


def test_second_writer_is_told_who_holds_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with held_by_another_process(folder, "medxlate train tiny") as holder:
        with pytest.raises(FolderLockedError) as info, folder_lock(folder, "second"):
            pytest.fail("two writers held the same folder")
        message = str(info.value)
        assert f"folder {folder} is in use by process {holder.pid} on " in message
        assert "(medxlate train tiny, started 20" in message
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == holder.pid
    assert not (folder / LOCK_NAME).exists()  # released and removed by its holder
    with folder_lock(folder, "third"):  # free again
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_lock_of_a_killed_process_is_not_stale(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with held_by_another_process(folder) as holder:
        holder.kill()
        holder.join(30)
        assert (folder / LOCK_NAME).exists()  # the dead holder could not clean up
        with folder_lock(folder, "after a crash"):  # the kernel released its lock: no stale lock
            assert json.loads((folder / LOCK_NAME).read_text())["purpose"] == "after a crash"


def test_folder_created_for_a_failed_run_is_removed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), folder_lock(tmp_path / "new", "failing"):
        raise RuntimeError
    assert not (tmp_path / "new").exists()
