"""GPU-only training checks (run by benchmarks/gpu.sh with ``pytest -m gpu``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medxlate.checkpoint import load_checkpoint
from medxlate.config import validate_config
from medxlate.data.prepare import prepare_dataset
from medxlate.models import build_discriminator, build_generator, get_adversarial_loss
from medxlate.training import fit
from medxlate.training.steps import GanModules, train_step
from tests.conftest import tiny_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_bf16_channels_last_step_never_waits_on_the_host() -> None:
    device = torch.device("cuda")
    generator = build_generator("unet", 2, 1, 1, num_downs=5, ngf=16).to(device, memory_format=torch.channels_last)
    discriminator = build_discriminator("patchgan", 2, 2, ndf=16, n_layers=3).to(
        device, memory_format=torch.channels_last
    )
    modules = GanModules(
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters(), lr=2e-4, fused=True),
        torch.optim.Adam(discriminator.parameters(), lr=2e-4, fused=True),
    )
    source = torch.rand(8, 1, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    target = torch.rand(8, 1, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    adversarial = get_adversarial_loss("lsgan")
    train_step(modules, source, target, adversarial, 100.0, bf16=True)  # warm-up (cuDNN, allocator)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device synchronisation raises
    try:
        losses = [train_step(modules, source, target, adversarial, 100.0, bf16=True) for _ in range(3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v).item() for v in losses[-1].values())


@pytest.mark.gpu
@needs_cuda
def test_fit_on_cuda_with_every_speed_flag(paired_folder: Path, tmp_path: Path) -> None:
    prepare_dataset(paired_folder, tmp_path / "dataset")
    cfg = tiny_config(tmp_path / "dataset", tmp_path / "run", epochs=2, decay_epochs=1, checkpoint_every=2)
    cfg["train"].update(device="cuda", bf16=True, channels_last=True, compile=True, num_workers=2)
    result = fit(validate_config(cfg))
    assert all(torch.isfinite(torch.tensor(v)) for v in result.metrics.values())
    content = load_checkpoint(result.checkpoint)
    assert content["epoch"] == 2 and "cuda" in content["rng_states"][0]
