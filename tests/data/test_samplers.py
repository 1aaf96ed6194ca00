"""Samplers over the disk cache: today's slices exactly, 3D patches, reproducible per (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medxlate.data import read_dataset
from medxlate.data.cache import CachedCase, VolumeReader, build_cache, read_paired_volume
from medxlate.data.prepare import prepare_dataset
from medxlate.data.samplers import PatchSampler, SliceSampler, item_seed
from medxlate.transforms import Preprocessing, pad_in_plane, stack_context
from tests.conftest import write_paired_folder

PREP = Preprocessing(source_window=(-1000.0, 1000.0), target_percentiles=(0.5, 99.5))


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> list[CachedCase]:
    root = tmp_path_factory.mktemp("samplers")
    pairs = write_paired_folder(root / "pairs")
    prepare_dataset(pairs, root / "dataset")
    ds = read_dataset(root / "dataset")
    return build_cache(ds, ds.split("train"), PREP, root / "cache")


def test_slices_equal_the_in_memory_path_in_the_same_order(cached: list[CachedCase]) -> None:
    """The pre-cache SliceDataset's items: whole volume stacked (2.5D) and padded, then sliced."""
    k, divisible = 1, 8
    sampler = SliceSampler(cached, VolumeReader(cached, 0), context_slices=k, divisible=divisible)
    expected = []
    for case in cached:
        volume = read_paired_volume(case)
        source, _ = pad_in_plane(stack_context(volume.source.as_tensor(), k), divisible, -1.0)
        target, _ = pad_in_plane(volume.target.as_tensor(), divisible, -1.0)
        mask, _ = pad_in_plane(volume.mask.float(), divisible, 0.0)
        body = torch.nonzero(volume.mask.flatten(0, 2).any(dim=0)).flatten().tolist()
        expected.extend({"source": source[..., z], "target": target[..., z], "mask": mask[..., z]} for z in body)
    assert len(sampler) == len(expected)
    for index in (0, 1, len(expected) // 2, len(expected) - 1):
        item = sampler[index]
        assert item["source"].shape == (3, 24, 24)
        for key in ("source", "target", "mask"):
            assert type(item[key]) is torch.Tensor
            torch.testing.assert_close(item[key], expected[index][key], rtol=0, atol=0)


def test_items_are_a_function_of_seed_epoch_and_index(cached: list[CachedCase]) -> None:
    a = SliceSampler(cached, VolumeReader(cached, 2), flip_prob=0.5, seed=3)
    b = SliceSampler(cached, VolumeReader(cached, 0), flip_prob=0.5, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    for index in (7, 0, 5):  # any order, any reader
        for key in ("source", "target", "mask"):
            torch.testing.assert_close(a[index][key], b[index][key], rtol=0, atol=0)
    plain = SliceSampler(cached, VolumeReader(cached, 0), flip_prob=0.0)
    flipped = [bool(torch.equal(a[i]["source"], plain[i]["source"].flip(-2))) for i in range(len(a))]
    kept = [bool(torch.equal(a[i]["source"], plain[i]["source"])) for i in range(len(a))]
    assert all(f != s for f, s in zip(flipped, kept, strict=True))  # each item is the slice, flipped or not
    b.set_epoch(3)
    assert [bool(torch.equal(b[i]["source"], plain[i]["source"])) for i in range(len(b))] != kept
    assert item_seed(0, 1, 2) == item_seed(0, 1, 2) != item_seed(0, 2, 1)


def _locate(patch: np.ndarray, volume: np.ndarray) -> tuple[int, int, int]:
    """Offset at which ``patch`` (X, Y, Z) occurs in ``volume``; fails if nowhere."""
    px, py, pz = patch.shape
    for x in range(volume.shape[0] - px + 1):
        for y in range(volume.shape[1] - py + 1):
            for z in range(volume.shape[2] - pz + 1):
                if np.array_equal(volume[x : x + px, y : y + py, z : z + pz], patch):
                    return x, y, z
    raise AssertionError("patch not found in its volume")


def test_patches_are_crops_of_one_volume_at_one_place(cached: list[CachedCase]) -> None:
    sampler = PatchSampler(cached, VolumeReader(cached, 0), (8, 8, 8), patches_per_volume=3, foreground_prob=1.0)
    assert len(sampler) == 2 * 3
    for index in range(len(sampler)):
        item = sampler[index]
        volume = read_paired_volume(cached[index % 2])
        x, y, z = _locate(item["source"][0].numpy(), volume.source[0].numpy())
        for key, whole in (("target", volume.target[0]), ("mask", volume.mask[0].float())):
            assert item[key].shape == (1, 8, 8, 8)
            torch.testing.assert_close(item[key][0], whole[x : x + 8, y : y + 8, z : z + 8].as_subclass(torch.Tensor))
        assert item["mask"].sum() > 0  # centred on the body


def test_foreground_probability_zero_gives_background_patches(cached: list[CachedCase]) -> None:
    body = PatchSampler(cached, VolumeReader(cached, 0), (8, 8, 4), patches_per_volume=8, foreground_prob=1.0)
    background = PatchSampler(cached, VolumeReader(cached, 0), (8, 8, 4), patches_per_volume=8, foreground_prob=0.0)
    centre = (slice(None), slice(3, 5), slice(3, 5), slice(1, 3))
    assert all(body[i]["mask"][centre].sum() > 0 for i in range(len(body)))
    assert any(background[i]["mask"][centre].sum() < 8 for i in range(len(background)))


def test_patch_larger_than_the_volume_is_padded_with_air(cached: list[CachedCase]) -> None:
    depth = cached[0].shape[2]  # 12 slices; the patch asks for 16
    sampler = PatchSampler(cached, VolumeReader(cached, 1), (8, 8, depth + 4), patches_per_volume=2)
    item = sampler[0]
    assert item["source"].shape == (1, 8, 8, depth + 4)
    for key, air in (("source", -1.0), ("target", -1.0), ("mask", 0.0)):
        edge = torch.cat([item[key][..., :2], item[key][..., -2:]], dim=-1)
        torch.testing.assert_close(edge, torch.full_like(edge, air))
    volume = read_paired_volume(cached[0]).source[0].numpy()
    _locate(item["source"][0, ..., 2:-2].numpy(), volume)


def test_patch_items_reproducible_and_epoch_dependent(cached: list[CachedCase]) -> None:
    a = PatchSampler(cached, VolumeReader(cached, 0), (8, 8, 8), flip_prob=0.5, seed=1)
    b = PatchSampler(cached, VolumeReader(cached, 2), (8, 8, 8), flip_prob=0.5, seed=1)
    torch.testing.assert_close(a[5]["source"], b[5]["source"], rtol=0, atol=0)
    draws = [a[i]["source"] for i in range(len(a))]
    a.set_epoch(1)
    assert any(not torch.equal(a[i]["source"], draws[i]) for i in range(len(a)))


def test_worker_processes_draw_the_same_items(cached: list[CachedCase]) -> None:
    from torch.utils.data import DataLoader

    sampler = PatchSampler(cached, VolumeReader(cached, 1), (8, 8, 8), patches_per_volume=2, flip_prob=0.5, seed=4)
    sampler.set_epoch(1)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(
            sampler, batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0), num_workers=workers
        )
        batches[workers] = [batch["source"] for batch in loader]
    for single, parallel in zip(batches[0], batches[2], strict=True):
        torch.testing.assert_close(parallel, single, rtol=0, atol=0)
