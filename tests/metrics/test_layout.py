"""Input layout of the metrics: volumes from load_volume/Translator (unbatched MetaTensors) are one
image (C, *spatial); anything ambiguous or mis-shaped is refused, never silently misread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from torch.testing import assert_close

import medxlate as mx
from medxlate.errors import InputDataError
from medxlate.metrics import mae, psnr, ssim
from tests.conftest import phantom, tiny_affine, write_nifti

SHAPE = (20, 24, 12)


@pytest.fixture
def volumes(tmp_path: Path) -> tuple[MetaTensor, MetaTensor, MetaTensor]:
    """CT-like pred, a noisy target and a body mask, read back through load_volume (C, X, Y, Z)."""
    ct, _, body = phantom(0, SHAPE)
    rng = np.random.default_rng(1)
    target = ct.astype(np.float32) + 30.0 * rng.standard_normal(SHAPE).astype(np.float32)
    for name, array in (("pred", ct), ("target", target), ("mask", body)):
        write_nifti(array, tmp_path / f"{name}.nii.gz", tiny_affine())
    return tuple(mx.load_volume(tmp_path / f"{name}.nii.gz") for name in ("pred", "target", "mask"))


def test_volumes_from_load_volume_are_read_as_one_image(volumes: tuple[MetaTensor, ...]) -> None:
    pred, target, mask = volumes
    assert not pred.is_batch and pred.shape == (1, *SHAPE)
    batched = [v.as_tensor()[None] for v in volumes]  # (1, 1, X, Y, Z): the unambiguous reference
    body = batched[2] > 0.5
    for kwargs, batched_kwargs in (({}, {}), ({"mask": mask > 0.5}, {"mask": body})):
        actual = ssim(pred, target, data_range=2000.0, **kwargs)
        expected = ssim(batched[0], batched[1], data_range=2000.0, **batched_kwargs)
        assert actual.shape == ()  # one image in, one value out
        assert_close(actual, expected[0])
        assert torch.isfinite(actual)
        assert_close(
            psnr(pred, target, data_range=2000.0, **kwargs), psnr(*batched[:2], data_range=2000.0, **batched_kwargs)[0]
        )
        assert_close(mae(pred, target, **kwargs), mae(*batched[:2], **batched_kwargs)[0])
    # a plain tensor next to an unbatched MetaTensor follows the MetaTensor's layout
    assert_close(mae(pred, target.as_tensor()), mae(*batched[:2])[0])


def test_collated_batch_of_metatensors_is_batched(volumes: tuple[MetaTensor, ...]) -> None:
    pred, target, _ = volumes
    batch_pred = list_data_collate([pred, pred])
    batch_target = list_data_collate([target, pred])
    assert batch_pred.is_batch
    values = mae(batch_pred, batch_target)
    assert_close(values, torch.stack([mae(pred, target), torch.zeros(())]))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda v: v.as_tensor()[0], r"expected \(B, C, \*spatial\).*got shape \(20, 24, 12\)"),
        (lambda v: v[None], r"unbatched MetaTensor is one image \(C, \*spatial\).*got shape \(1, 1, 20, 24, 12\)"),
        (lambda v: v[0], r"shape \(20, 24, 12\) whose reader recorded 3 spatial dims"),
    ],
    ids=["plain-3d", "metatensor-with-batch-axis", "metatensor-without-channel"],
)
def test_wrong_rank_is_refused(volumes: tuple[MetaTensor, ...], make, message: str) -> None:
    pred, target, _ = volumes
    for metric in (ssim, psnr):
        with pytest.raises(InputDataError, match=message):
            metric(make(pred), make(target), data_range=1.0)
    with pytest.raises(InputDataError, match=message):
        mae(make(pred), make(target))


@pytest.mark.parametrize(
    ("mask_shape", "batched"),
    [
        ((20, 24, 12), False),  # no channel axis
        ((1, 1, 20, 24, 12), False),  # batched mask for one image
        ((1, 20, 24, 1), False),  # a slice mask would broadcast along z
        ((1, 24, 20, 12), False),  # transposed in-plane axes
        ((2, 20, 24, 12), False),  # 2 channels for a 1-channel image
        ((1, 1, 20, 24, 1), True),
        ((1, 20, 24, 12), True),
        ((3, 1, 20, 24, 12), True),  # batch of 3 for a batch of 2
    ],
)
def test_mask_of_the_wrong_layout_is_refused(mask_shape: tuple[int, ...], batched: bool) -> None:
    shape = (2, 1, *SHAPE) if batched else (1, *SHAPE)
    pred = torch.zeros(shape) if batched else MetaTensor(torch.zeros(shape))
    mask = torch.ones(mask_shape, dtype=torch.bool)
    for metric in (mae, lambda p, t, mask: psnr(p, t, data_range=1.0, mask=mask)):
        with pytest.raises(
            InputDataError, match=r"mask of shape " + str(mask_shape).replace("(", r"\(").replace(")", r"\)")
        ):
            metric(pred, pred, mask=mask)
    with pytest.raises(InputDataError, match=r"mask of shape"):
        ssim(pred, pred, data_range=1.0, mask=mask)


def test_plain_4d_volume_is_ambiguous_without_spatial_dims(volumes: tuple[MetaTensor, ...]) -> None:
    """``torch.from_numpy(array)[None]`` is (1, X, Y, Z): one volume or a 2D batch with X channels."""
    pred, target, mask = (torch.from_numpy(v.as_tensor().numpy()[0])[None] for v in volumes)  # (1, X, Y, Z) plain
    assert pred.shape == (1, *SHAPE) and not isinstance(pred, MetaTensor)
    calls = {
        "ssim": lambda **kw: ssim(pred, target, data_range=2000.0, **kw),
        "psnr": lambda **kw: psnr(pred, target, data_range=2000.0, **kw),
        "mae": lambda **kw: mae(pred, target, **kw),
        "ms_ssim": lambda **kw: mx.metrics.ms_ssim(pred, target, data_range=2000.0, weights=(1.0,), **kw),
    }
    batched = pred[None], target[None]  # (1, 1, X, Y, Z): the unambiguous reference
    expected = {
        "ssim": ssim(*batched, data_range=2000.0)[0],
        "psnr": psnr(*batched, data_range=2000.0)[0],
        "mae": mae(*batched)[0],
        "ms_ssim": mx.metrics.ms_ssim(*batched, data_range=2000.0, weights=(1.0,))[0],
    }
    for name, call in calls.items():
        with pytest.raises(InputDataError, match=rf"{name}: a plain tensor of shape \(1, 20, 24, 12\) is either a 2D "):
            call()
        with pytest.raises(InputDataError, match=r"pass spatial_dims=2 or spatial_dims=3"):
            call()
        value = call(spatial_dims=3)  # one volume (C, X, Y, Z)
        assert value.shape == ()
        assert_close(value, expected[name])
    masked = ssim(pred, target, data_range=2000.0, mask=mask > 0.5, spatial_dims=3)
    assert_close(masked, ssim(*batched, data_range=2000.0, mask=mask[None] > 0.5)[0])
    # read as a 2D batch when asked: one value per slice along X (each a 2D image with 1 channel)
    slices = pred.permute(1, 0, 2, 3), target.permute(1, 0, 2, 3)  # (X, 1, Y, Z)
    assert_close(mae(*slices, spatial_dims=2), (slices[0] - slices[1]).abs().mean(dim=(1, 2, 3)))


@pytest.mark.parametrize(
    ("spatial_dims", "shape", "message"),
    [
        (1, (1, 1, 16, 16), r"spatial_dims must be 2 or 3 \(or None\), got 1"),
        (True, (1, 1, 16, 16), r"spatial_dims must be 2 or 3 \(or None\), got True"),
        (3, (1, 1, 1, 16, 16, 16), r"spatial_dims=3 expects \(B, C, \*spatial\) \(5 dims\) or one image"),
        (2, (1, 16, 16, 16, 16), r"spatial_dims=2 expects \(B, C, \*spatial\) \(4 dims\)"),
    ],
)
def test_spatial_dims_must_fit_the_shape(spatial_dims: object, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(InputDataError, match=message):
        mae(torch.zeros(shape), torch.zeros(shape), spatial_dims=spatial_dims)  # type: ignore[arg-type]


def test_spatial_dims_must_agree_with_an_unbatched_metatensor(volumes: tuple[MetaTensor, ...]) -> None:
    pred, target, _ = volumes  # (1, X, Y, Z), one image by MONAI's convention
    assert_close(mae(pred, target, spatial_dims=3), mae(pred, target))
    with pytest.raises(InputDataError, match=r"spatial_dims=2 expects .* got shape \(1, 20, 24, 12\)"):
        mae(pred, target, spatial_dims=2)


def test_unambiguous_layouts_need_no_spatial_dims(volumes: tuple[MetaTensor, ...]) -> None:
    pred, target, _ = volumes
    plain = pred.as_tensor()[None], target.as_tensor()[None]  # plain 5-dim: a 3D batch
    assert mae(*plain).shape == (1,)
    slices = [MetaTensor(v.as_tensor()[..., 0]) for v in (pred, target, pred)]  # 2D MetaTensors (1, X, Y)
    batch = list_data_collate(slices[:2]), list_data_collate(slices[1:])  # batched MetaTensors (2, 1, X, Y)
    assert batch[0].is_batch and batch[0].ndim == 4
    expected = mae(
        torch.stack([s.as_tensor() for s in slices[:2]]),
        torch.stack([s.as_tensor() for s in slices[1:]]),
        spatial_dims=2,
    )
    assert_close(mae(*batch), expected)
