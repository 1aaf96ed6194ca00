"""Progress display: a bar on a terminal, one line per finished item (never bar redraws) elsewhere."""

from __future__ import annotations

import io
import re

import pytest

from medxlate import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_line_per_finished_item(capsys: pytest.CaptureFixture[str]) -> None:
    seen, written = [], ""
    for item in progress.track(["a", "b", "c"], desc="evaluate val", unit="case"):
        written += capsys.readouterr().err
        assert written.count("\n") == len(seen)  # a line per finished item, none for the current one
        seen.append(item)
    written += capsys.readouterr().err
    assert seen == ["a", "b", "c"] and "\r" not in written
    lines = written.splitlines()
    assert [re.fullmatch(r"evaluate val: (\d)/3 cases \(\d+\.\d s\)", line)[1] for line in lines] == ["1", "2", "3"]


def test_off_a_terminal_lines_without_a_length(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(progress.track(iter(range(2)), desc="translate", unit="volume")) == [0, 1]
    err = capsys.readouterr().err
    assert [line.split(" (")[0] for line in err.splitlines()] == ["translate: 1 volumes", "translate: 2 volumes"]


def test_on_a_terminal_a_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert progress.on_terminal() and progress.show_bar(True) and not progress.show_bar(False)
    assert list(progress.track(range(3), desc="evaluate val", unit="case")) == [0, 1, 2]
    assert "evaluate val: 100%|" in terminal.getvalue() and "3/3" in terminal.getvalue()
    bar = progress.step_bar(4, desc="epoch 1/2")
    assert not bar.disable
    bar.close()


def test_disabled_and_step_bars_are_silent_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(progress.track(range(3), desc="x", unit="case", enabled=False)) == [0, 1, 2]
    bar = progress.step_bar(4, desc="epoch 1/2")
    assert bar.disable
    bar.update(4)
    bar.close()
    assert not progress.show_bar(True)
    assert capsys.readouterr().err == ""


def test_a_closed_or_odd_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr("sys.stderr", closed)
    assert not progress.on_terminal()
    monkeypatch.setattr("sys.stderr", object())
    assert not progress.on_terminal()
