"""Generators trained with the pix2pix/CycleGAN reference load into medxlate and compute the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from medxlate.errors import CheckpointError, ConfigError
from medxlate.models import ResNetGenerator, UNetGenerator, from_pix2pix
from tests.models.pix2pix_reference import define_g

NGF = 8
SIZE = {"unet_128": 128, "unet_256": 256, "resnet_6blocks": 32, "resnet_9blocks": 32}


def _reference(net_g: str, norm: str, use_dropout: bool, input_nc: int = 3, output_nc: int = 2) -> nn.Module:
    """A reference generator with every weight and running statistic random (none at its initial value)."""
    torch.manual_seed(0)
    net = define_g(input_nc, output_nc, NGF, net_g, norm, use_dropout)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(7)
            elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
                module.bias.normal_(0.0, 0.1)
    return net.eval()


def _save(net: nn.Module, path: Path, data_parallel: bool = False) -> Path:
    """Save as the reference does (``torch.save(net.module.cpu().state_dict(), ...)``), or with the
    ``module.`` prefix a ``DataParallel`` wrapper's own state dict has."""
    state = net.cpu().state_dict()
    if data_parallel:
        state = {f"module.{key}": value for key, value in state.items()}
    torch.save(state, path)
    return path


@pytest.mark.parametrize("use_dropout", [True, False], ids=["dropout", "no_dropout"])
@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize("net_g", ["unet_128", "unet_256", "resnet_6blocks", "resnet_9blocks"])
def test_imported_generator_computes_what_the_reference_computes(
    net_g: str, norm: str, use_dropout: bool, tmp_path: Path
) -> None:
    reference = _reference(net_g, norm, use_dropout)
    path = _save(reference, tmp_path / "latest_net_G.pth")
    x = torch.rand(2, 3, SIZE[net_g], SIZE[net_g]) * 2 - 1

    imported = from_pix2pix(path, netG=net_g, norm=norm, input_nc=3, output_nc=2, ngf=NGF)

    assert isinstance(imported, UNetGenerator if net_g.startswith("unet") else ResNetGenerator)
    assert not imported.training
    with torch.no_grad():
        expected = reference(x.clone())  # the reference's in-place activations may write into its input
        torch.testing.assert_close(imported(x), expected, rtol=0, atol=1e-5)
    assert expected.std() > 0.01  # the outputs are not saturated or constant, so the comparison means something


def test_data_parallel_prefix_is_removed(tmp_path: Path) -> None:
    reference = _reference("resnet_6blocks", "batch", use_dropout=True, input_nc=1, output_nc=1)
    path = _save(reference, tmp_path / "latest_net_G.pth", data_parallel=True)
    x = torch.rand(1, 1, 16, 16) * 2 - 1

    imported = from_pix2pix(path, netG="resnet_6blocks", norm="batch", input_nc=1, output_nc=1, ngf=NGF)

    with torch.no_grad():
        torch.testing.assert_close(imported(x), reference(x.clone()), rtol=0, atol=1e-5)


def test_stale_instance_norm_statistics_and_missing_batch_counters_are_tolerated(tmp_path: Path) -> None:
    """What the reference's loader patches: running stats PyTorch < 0.4 saved for instance norms,
    and no ``num_batches_tracked`` (PyTorch < 0.4.1); neither changes the eval-mode output."""
    instance = _reference("unet_128", "instance", use_dropout=False, input_nc=1, output_nc=1)
    state = instance.state_dict()
    state["model.model.1.model.2.running_mean"] = torch.zeros(2 * NGF)  # level 1's down norm
    state["model.model.1.model.2.running_var"] = torch.ones(2 * NGF)
    torch.save(state, tmp_path / "instance.pth")
    batch = _reference("resnet_6blocks", "batch", use_dropout=False, input_nc=1, output_nc=1)
    old = {key: value for key, value in batch.state_dict().items() if not key.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "batch.pth")

    from_instance = from_pix2pix(
        tmp_path / "instance.pth", netG="unet_128", norm="instance", input_nc=1, output_nc=1, ngf=NGF
    )
    from_batch = from_pix2pix(
        tmp_path / "batch.pth", netG="resnet_6blocks", norm="batch", input_nc=1, output_nc=1, ngf=NGF
    )

    with torch.no_grad():
        x = torch.rand(1, 1, 128, 128) * 2 - 1
        torch.testing.assert_close(from_instance(x), instance(x.clone()), rtol=0, atol=1e-5)
        torch.testing.assert_close(from_batch(x[..., :16, :16]), batch(x[..., :16, :16].clone()), rtol=0, atol=1e-5)


_DEEP = "model.model.1.model.3.model.3.model.3.model.3.model.3.model."  # level 6 of a U-Net


@pytest.mark.parametrize(
    "net_g, norm, missing, unexpected",
    [
        # one level more: level 6 is innermost in the file, an intermediate block with a norm and an inner block here
        ("unet_256", "batch", f"missing keys (15): {_DEEP}2.bias", f"unexpected keys (6): {_DEEP}3.weight"),
        # the other family: nothing matches
        ("resnet_9blocks", "batch", "missing keys (117): model.1.weight", "unexpected keys (70): model.model.0.weight"),
        # instance norm: conv biases missing, batch norm affine parameters unexpected
        (
            "unet_128",
            "instance",
            "missing keys (13): model.model.0.bias",
            "unexpected keys (22): model.model.1.model.2.bias",
        ),
    ],
)
def test_wrong_architecture_names_the_missing_and_unexpected_keys(
    net_g: str, norm: str, missing: str, unexpected: str, tmp_path: Path
) -> None:
    path = _save(_reference("unet_128", "batch", use_dropout=True, input_nc=1, output_nc=1), tmp_path / "g.pth")

    with pytest.raises(CheckpointError) as caught:
        from_pix2pix(path, netG=net_g, norm=norm, input_nc=1, output_nc=1, ngf=NGF)

    message = str(caught.value)
    assert message.startswith(f"{path}: not a pix2pix '{net_g}' generator with norm '{norm}', input_nc 1")
    assert missing in message and unexpected in message


def test_wrong_channels_name_the_tensor_and_both_shapes(tmp_path: Path) -> None:
    path = _save(
        _reference("resnet_6blocks", "instance", use_dropout=False, input_nc=1, output_nc=1), tmp_path / "g.pth"
    )

    with pytest.raises(CheckpointError, match=r"model\.1\.weight has shape \(8, 1, 7, 7\), expected \(8, 3, 7, 7\)"):
        from_pix2pix(path, netG="resnet_6blocks", norm="instance", input_nc=3, output_nc=1, ngf=NGF)


def test_unknown_netg_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="netG 'unet256': did you mean 'unet_256'"):
        from_pix2pix(tmp_path / "missing.pth", netG="unet256")


class _Payload:
    """Not a tensor: unpickling it would run this module's code."""


def test_a_pickle_with_objects_is_refused_without_running_it(tmp_path: Path) -> None:
    path = tmp_path / "latest_net_G.pth"
    torch.save({"model.1.weight": _Payload()}, path)

    with pytest.raises(CheckpointError, match="unsafe"):
        from_pix2pix(path, netG="resnet_6blocks", norm="instance", input_nc=1, output_nc=1, ngf=NGF)
