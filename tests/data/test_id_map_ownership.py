"""``prepare --id-map`` replaces only its own dataset's id map; datasets are locked (issue 6, items 8-9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medxlate.data.prepare import run_prepare
from medxlate.errors import FolderLockedError, OutputError
from tests.lock_helpers import held_by_another_process


def test_rerun_replaces_own_id_map_but_not_another_datasets(paired_folder: Path, tmp_path: Path) -> None:
    ids = tmp_path / "private" / "ids.csv"
    run_prepare(paired_folder, tmp_path / "a", id_map=ids)
    first = ids.read_bytes()
    run_prepare(paired_folder, tmp_path / "a", id_map=ids)  # the same dataset: its own map, refreshed
    assert ids.read_bytes() == first
    with pytest.raises(
        OutputError, match=r"id map .*ids\.csv: already exists and is the id map of dataset [0-9a-f]{32}"
    ):
        run_prepare(paired_folder, tmp_path / "b", id_map=ids)
    assert ids.read_bytes() == first  # the other dataset's only patient <-> case link survives
    assert not (tmp_path / "b" / "dataset.json").exists()
    run_prepare(paired_folder, tmp_path / "b", id_map=ids, force=True)
    assert ids.read_bytes() != first


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"\x00" * 128 + b"DICM\x02\x00\xff\xfe", r"binary, not a UTF-8 CSV\), not this dataset's \(which has no"),
        (b"patient,notes\nP1,keep me\n", "no 'dataset_uid' column"),
    ],
)
def test_foreign_file_at_id_map_path_is_refused(
    paired_folder: Path, tmp_path: Path, content: bytes, found: str
) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_bytes(content)
    with pytest.raises(OutputError, match=found):
        run_prepare(paired_folder, tmp_path / "ds", id_map=ids)
    assert ids.read_bytes() == content


def test_id_map_onto_an_input_file_is_refused_even_with_force(paired_folder: Path, tmp_path: Path) -> None:
    source = paired_folder / "patient_0" / "ct.nii.gz"
    original = source.read_bytes()
    with pytest.raises(OutputError, match=rf"id map {source}: it lies inside the input folder {paired_folder}"):
        run_prepare(paired_folder, tmp_path / "ds", id_map=source, force=True)
    assert source.read_bytes() == original
    with pytest.raises(
        OutputError, match=rf"dataset folder {paired_folder / 'dataset'}: it lies inside the input folder"
    ):
        run_prepare(paired_folder, paired_folder / "dataset")


def test_second_prepare_into_a_locked_dataset_fails_naming_the_holder(paired_folder: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "ds"
    with (
        held_by_another_process(dataset, "medxlate prepare") as holder,
        pytest.raises(FolderLockedError, match=rf"folder {dataset} is in use by process {holder.pid} "),
    ):
        run_prepare(paired_folder, dataset, id_map=tmp_path / "ids.csv")
    assert not (dataset / "dataset.json").exists() and not (tmp_path / "ids.csv").exists()
