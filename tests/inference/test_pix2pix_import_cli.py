"""`medxlate import-pix2pix` writes a checkpoint that `medxlate translate` runs: the reference generator,
slice by slice on the canonical grid, between the stated intensity windows, with the input's geometry."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medxlate.checkpoint import load_checkpoint
from medxlate.inference import Translator
from medxlate.transforms.intensity import percentile_range, range_to_unit, unit_to_range
from tests.conftest import phantom, tiny_affine, write_nifti
from tests.models.pix2pix_reference import define_g
from tests.test_cli import run_cli

WINDOW = (-1000.0, 1500.0)


@pytest.fixture
def reference_weights(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    """A CycleGAN-style ResNet (instance norm, no dropout) with random biases, saved as the reference saves it."""
    torch.manual_seed(0)
    net = define_g(1, 1, 4, "resnet_6blocks", "instance", use_dropout=False)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and module.bias is not None:
                module.bias.normal_(0.0, 0.1)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(net.state_dict(), path)
    return net.eval(), path


def test_import_then_translate_end_to_end(
    reference_weights: tuple[torch.nn.Module, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    net, weights = reference_weights
    _, mr, _ = phantom(3, shape=(16, 20, 5))  # in-plane sizes multiples of 4: no padding
    write_nifti(mr, tmp_path / "mr.nii.gz", tiny_affine())  # LAS: the model sees x flipped (RAS)
    model = tmp_path / "imported.pt"

    code, out, err = run_cli(
        monkeypatch, capsys, "import-pix2pix", str(weights), str(model), "--netG", "resnet_6blocks",
        "--norm", "instance", "--ngf", "4", "--task", "mr2ct", "--window", *map(str, WINDOW),
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == f"checkpoint: {model}"
    paths = [str(model), str(tmp_path / "mr.nii.gz"), str(tmp_path / "sct.nii.gz")]
    code, _, err = run_cli(monkeypatch, capsys, "translate", *paths, "--device", "cpu")
    assert code == 0, err

    written = nib.load(tmp_path / "sct.nii.gz")
    np.testing.assert_array_equal(written.affine, tiny_affine())
    source = torch.from_numpy(mr).float()
    unit = range_to_unit(source, percentile_range(source, (0.5, 99.5))).flip(0)  # canonical RAS
    with torch.no_grad():
        slices = net(unit.permute(2, 0, 1)[:, None])[:, 0]  # (Z, X, Y): one slice per batch item
    expected = unit_to_range(slices.permute(1, 2, 0), WINDOW).flip(0)
    torch.testing.assert_close(torch.from_numpy(written.get_fdata(dtype=np.float32)), expected, rtol=0, atol=0.05)
    assert expected.std() > 10.0  # HU: a varied image, not a constant


def test_checkpoint_records_what_the_user_stated(
    reference_weights: tuple[torch.nn.Module, Path], tmp_path: Path
) -> None:
    from medxlate.inference.imported import import_pix2pix

    _, weights = reference_weights
    path = import_pix2pix(
        weights, tmp_path / "m.pt", netG="resnet_6blocks", norm="instance", task="ct2mr", window=(-200.0, 400.0),
        input_nc=1, ngf=4, mr_range=(0.0, 1200.0), pixdim=(1.0, 1.0, 2.5),
    )  # fmt: skip

    content = load_checkpoint(path)
    prep = content["preprocessing"]
    assert (prep["task"]["name"], prep["source_window"], prep["target_range"]) == (
        "ct2mr",
        [-200.0, 400.0],
        [0.0, 1200.0],
    )
    assert (prep["pixdim"], prep["context_slices"], prep["divisible"]) == ([1.0, 1.0, 2.5], 0, 4)
    assert content["inference"]["kind"] == "slices"
    assert content["generator_spec"] == {
        "name": "resnet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 1,
        "params": {"n_blocks": 6, "ngf": 4, "norm": "instance", "dropout": 0.0},
    }
    assert content["imported_from"]["netG"] == "resnet_6blocks" and len(content["imported_from"]["sha256"]) == 64
    assert (content["source_modality"], content["target_modality"]) == ("CT", "MR")
    assert Translator.from_checkpoint(path, device="cpu").preprocessing.target_range == (0.0, 1200.0)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--netG", "unet_128"], "not a pix2pix 'unet_128' generator with norm 'instance'"),
        (["--task", "ct2mr"], "--mr-range LOW HIGH"),
        (["--output-nc", "3"], "output_nc (--output-nc) got 3"),
        (["--input-nc", "2"], "input_nc (--input-nc) got 2"),
    ],
)
def test_bad_import_is_one_clear_line(
    extra: list[str],
    message: str,
    reference_weights: tuple[torch.nn.Module, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, weights = reference_weights
    base = ["--netG", "resnet_6blocks", "--norm", "instance", "--ngf", "4", "--task", "mr2ct", "--window", "0", "1"]
    code, _, err = run_cli(monkeypatch, capsys, "import-pix2pix", str(weights), str(tmp_path / "m.pt"), *base, *extra)

    assert code == 2 and err.startswith("error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.pt").exists()
