"""The on-disk volume cache: exact content, warm reuse, rebuild on another dataset/preprocessing."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medxlate.data import read_dataset
from medxlate.data.cache import INDEX_FILE, VolumeReader, build_cache, read_paired_volume
from medxlate.data.prepare import prepare_dataset
from medxlate.data.volumes import load_paired_volume
from medxlate.errors import InputDataError
from medxlate.transforms import Preprocessing

PREP = Preprocessing(source_window=(-1000.0, 1000.0), target_percentiles=(0.5, 99.5))


@pytest.fixture
def dataset(paired_folder: Path, tmp_path: Path) -> Path:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    return tmp_path / "dataset"


def test_cache_holds_exactly_the_preprocessed_volumes(dataset: Path, tmp_path: Path) -> None:
    ds = read_dataset(dataset)
    cached = build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    assert [c.case_id for c in cached] == [c.id for c in ds.cases]
    for case, entry in zip(ds.cases, cached, strict=True):
        expected = load_paired_volume(case, PREP)
        got = read_paired_volume(entry)
        torch.testing.assert_close(got.source.as_tensor(), expected.source.as_tensor(), rtol=0, atol=0)
        torch.testing.assert_close(got.target.as_tensor(), expected.target.as_tensor(), rtol=0, atol=0)
        assert torch.equal(got.mask, expected.mask)
        torch.testing.assert_close(got.source.affine, torch.as_tensor(expected.source.affine, dtype=torch.float64))
        assert got.target_range == expected.target_range
        body = np.flatnonzero(expected.mask[0].numpy().any(axis=(0, 1))).tolist()
        assert list(entry.body_slices) == body
        # no patient-derived name reaches the cache's file names
        assert case.id not in str(entry.folder.relative_to(tmp_path / "cache"))


def test_warm_cache_is_reused_without_rewriting(dataset: Path, tmp_path: Path) -> None:
    ds = read_dataset(dataset)
    first = build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")}
    second = build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")} == stamps


def test_model_depth_and_context_share_the_cache(dataset: Path, tmp_path: Path) -> None:
    ds = read_dataset(dataset)
    first = build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")}
    other = Preprocessing(PREP.source_window, PREP.target_percentiles, (1.0, 2.0), None, 2, 64)
    assert build_cache(ds, ds.cases, other, tmp_path / "cache") == first
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npy")} == stamps


def test_other_preprocessing_is_detected_and_rebuilt(
    dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = read_dataset(dataset)
    build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    other = Preprocessing(source_window=(-500.0, 500.0), target_percentiles=(0.5, 99.5))
    with caplog.at_level(logging.WARNING, logger="medxlate.data.cache"):
        cached = build_cache(ds, ds.cases, other, tmp_path / "cache")
    assert "built for another dataset or preprocessing" in caplog.text
    expected = load_paired_volume(ds.cases[0], other).source.as_tensor()
    torch.testing.assert_close(read_paired_volume(cached[0]).source.as_tensor(), expected, rtol=0, atol=0)


def test_cache_of_another_dataset_is_rebuilt(
    dataset: Path, paired_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = read_dataset(dataset)
    build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    other_root = tmp_path / "other"
    shutil.copytree(dataset, other_root)
    case_file = read_dataset(other_root).cases[0].source
    ct = np.asarray(nib.load(case_file).dataobj)
    nib.save(nib.Nifti1Image(ct + 50, nib.load(case_file).affine), case_file)
    other = read_dataset(other_root)
    with caplog.at_level(logging.WARNING, logger="medxlate.data.cache"):
        cached = build_cache(other, other.cases, PREP, tmp_path / "cache")
    assert "rebuilding" in caplog.text
    expected = load_paired_volume(other.cases[0], PREP).source.as_tensor()
    torch.testing.assert_close(read_paired_volume(cached[0]).source.as_tensor(), expected, rtol=0, atol=0)
    assert not torch.equal(expected, load_paired_volume(ds.cases[0], PREP).source.as_tensor())


def test_foreign_folder_is_refused_and_left_alone(dataset: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    ds = read_dataset(dataset)
    with pytest.raises(InputDataError, match=r"data\.cache_dir: .*mine exists and is not a medxlate data cache"):
        build_cache(ds, ds.cases, PREP, folder)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_interrupted_build_resumes(dataset: Path, tmp_path: Path) -> None:
    ds = read_dataset(dataset)
    root = tmp_path / "cache"
    build_cache(ds, ds.cases, PREP, root)
    index = json.loads((root / INDEX_FILE).read_text())
    (root / INDEX_FILE).write_text(json.dumps({**index, "complete": False}))
    shutil.rmtree(root / "00001")
    kept = (root / "00000" / "source.npy").stat().st_mtime_ns
    cached = build_cache(ds, ds.cases, PREP, root)
    assert (root / "00000" / "source.npy").stat().st_mtime_ns == kept
    expected = load_paired_volume(ds.cases[1], PREP).target.as_tensor()
    torch.testing.assert_close(read_paired_volume(cached[1]).target.as_tensor(), expected, rtol=0, atol=0)


@pytest.mark.parametrize("in_memory", [0, 1])
def test_reader_regions_match_the_volume(dataset: Path, tmp_path: Path, in_memory: int) -> None:
    ds = read_dataset(dataset)
    cached = build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    reader = VolumeReader(cached, in_memory)
    whole = read_paired_volume(cached[1]).source.as_tensor().numpy()  # (1, X, Y, Z)
    region = reader.region(1, "source", np.array([3, 3, 4]), slice(2, 9), slice(5, 7))  # (Z', C, X', Y')
    np.testing.assert_array_equal(region, np.moveaxis(whole[:, 2:9, 5:7][..., [3, 3, 4]], -1, 0))
    assert len(reader._held) == min(in_memory, 1)
    assert len(pickle.loads(pickle.dumps(reader))._held) == 0


def test_training_domain_from_the_cache_equals_the_in_memory_one(dataset: Path, tmp_path: Path) -> None:
    from medxlate.data.cache import MappedSources
    from medxlate.transforms import TrainingDomain

    ds = read_dataset(dataset)
    cached = build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    in_memory = [load_paired_volume(case, PREP).source for case in ds.cases]
    expected = TrainingDomain.from_volumes(in_memory, PREP.source_window)
    assert TrainingDomain.from_volumes(MappedSources(cached), PREP.source_window) == expected


def test_training_domain_reads_the_stored_sample_not_the_volumes(dataset: Path, tmp_path: Path) -> None:
    from medxlate.data.cache import MappedSources
    from medxlate.transforms import TrainingDomain

    ds = read_dataset(dataset)
    cached = build_cache(ds, ds.cases, PREP, tmp_path / "cache")
    window = PREP.source_unit_range
    full = [load_paired_volume(case, PREP).source for case in ds.cases]  # whole volumes, read directly
    expected = TrainingDomain.from_volumes(full, window)
    assert all(case.path("sample").is_file() for case in cached)
    assert TrainingDomain.from_volumes(MappedSources(cached), window) == expected
    for case in cached:  # a cache written before samples were stored: read from the memory map
        case.path("sample").rename(case.folder / "kept.npy")
    assert TrainingDomain.from_volumes(MappedSources(cached), window) == expected
    for case in cached:  # with the sample stored, the volumes themselves are not read
        (case.folder / "kept.npy").rename(case.path("sample"))
        source = np.load(case.path("source"))
        np.save(case.path("source"), np.zeros_like(source))
    assert TrainingDomain.from_volumes(MappedSources(cached), window) == expected
