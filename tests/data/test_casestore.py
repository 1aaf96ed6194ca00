"""Opaque id assignment, split assignment and case-folder bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from medxlate.config.prepare import SplitConfig
from medxlate.data.casestore import StoredCase, assign_ids, clean_temporaries, hash_files, write_case
from medxlate.data.splits import assign_splits, split_counts


def stored(case_id: str, key: str) -> StoredCase:
    return StoredCase(case_id, "fp", key, {})


def test_ids_follow_input_order_on_a_fresh_folder() -> None:
    assert assign_ids(["a", "b", "c"], {}) == ["case_000", "case_001", "case_002"]
    assert assign_ids(["a", "a"], {}) == ["case_000", "case_001"]  # duplicates stay distinct


def test_ids_are_reused_and_new_inputs_do_not_renumber_old_ones() -> None:
    existing = {"case_000": stored("case_000", "a"), "case_001": stored("case_001", "b")}
    assert assign_ids(["new", "a", "b"], existing) == ["case_003", "case_000", "case_001"]
    assert assign_ids(["b", "x"], existing) == ["case_001", "case_002"]  # position 1 is taken: next free number
    assert assign_ids(["x", "b"], existing) == ["case_000", "case_001"]  # case_000 input is gone: its id is free


@pytest.mark.parametrize(
    "n, val, test, expected",
    [
        (10, 0.2, 0.1, (1, 2)),
        (2, 0.2, 0.0, (0, 1)),
        (1, 0.5, 0.0, (0, 0)),
        (3, 0.1, 0.1, (1, 1)),
        (2, 0.5, 0.5, (0, 1)),
    ],
)
def test_split_counts(n: int, val: float, test: float, expected: tuple[int, int]) -> None:
    assert split_counts(n, SplitConfig(val_fraction=val, test_fraction=min(test, 0.49))) == expected


def test_assign_splits_keeps_groups_and_explicit_splits() -> None:
    groups = {f"c{i}": f"g{i // 2}" for i in range(6)}
    content = {f"c{i}": f"{i:064x}" for i in range(6)}
    splits = assign_splits(groups, content, SplitConfig(val_fraction=0.34), {"c5": "test"})
    assert splits["c5"] == "test"
    assert splits["c0"] == splits["c1"] and splits["c2"] == splits["c3"]
    assert sorted(splits.values()).count("val") in (1, 2)
    other_seed = assign_splits(groups, content, SplitConfig(val_fraction=0.34, seed=1), {"c5": "test"})
    assert assign_splits(groups, content, SplitConfig(val_fraction=0.34), {"c5": "test"}) == splits
    assert set(other_seed) == set(splits)


def test_hash_files_depends_on_content_only(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"one")
    (tmp_path / "b").write_bytes(b"two")
    (tmp_path / "renamed").write_bytes(b"one")
    assert hash_files([tmp_path / "a", tmp_path / "b"]) == hash_files([tmp_path / "b", tmp_path / "renamed"])
    assert hash_files([tmp_path / "a"]) != hash_files([tmp_path / "b"])


def test_write_case_failure_restores_nothing_half_written(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    write_case(cases, stored("case_000", "k"), {"source": lambda p: p.write_bytes(b"old")})

    def fail(path: Path) -> None:
        path.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_case(cases, stored("case_000", "k2"), {"source": lambda p: p.write_bytes(b"new"), "target": fail})
    assert sorted(p.name for p in cases.iterdir()) == ["case_000"]
    assert (cases / "case_000" / "source.nii.gz").read_bytes() == b"old"


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    (cases / ".case_000.tmp-abc123").mkdir(parents=True)
    (cases / ".case_001.tmp-old").mkdir()  # killed between the two renames
    (cases / ".case_001.tmp-old" / "case.json").write_text("{}")
    clean_temporaries(cases)
    assert sorted(p.name for p in cases.iterdir()) == ["case_001"]
