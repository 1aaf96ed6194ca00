"""The training runtime: device, speed settings, distributed setup/teardown and rank-0 side effects.

``torchrun`` (``torch.distributed.run``) starts one process per device and sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`start_runtime` reads them,
checks them, and joins the process group (NCCL on CUDA, gloo on CPU). Without them training runs in
one process exactly as before. Only rank 0 (``Runtime.is_main``) logs to the tracker, writes
checkpoints, montages and console output.

Normalisation under DDP: on CUDA every ``BatchNorm`` becomes a ``SyncBatchNorm`` (statistics over the
global batch). PyTorch's ``SyncBatchNorm`` has no CPU kernel, so a CPU (gloo) run keeps per-rank
batch statistics while DDP broadcasts rank 0's running statistics at every forward; use
``norm: instance`` in ``generator_params``/``discriminator_params`` for a setting that is identical
for any number of processes.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from medxlate.errors import ConfigError
from medxlate.inference.translator import resolve_device

logger = logging.getLogger(__name__)

_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Runtime:
    """Where this process trains and how it relates to the others.

    Attributes:
        device: The device of this process (``cuda:LOCAL_RANK`` under torchrun on CUDA).
        rank: Global rank (0 without torchrun).
        world_size: Number of processes (1 without torchrun).
        local_rank: Rank on this node.
        owns_group: Whether this runtime created the process group (and destroys it when stopped).
    """

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one process is active."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process with side effects (tracker, checkpoints, console)."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank (no-op in one process)."""
        if self.distributed:
            torch.distributed.barrier()

    def any_flag(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one (a tiny all-reduce)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of a tensor over ranks (the tensor itself in one process)."""
        if not self.distributed:
            return values
        values = values.detach().clone()
        torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
        return values / self.world_size


def torchrun_env(environ: dict[str, str] | None = None) -> dict[str, int | str] | None:
    """The torchrun variables of the environment, checked; ``None`` when training runs in one process.

    Args:
        environ: Environment to read (default ``os.environ``).

    Returns:
        ``rank``, ``local_rank``, ``world_size``, ``master_addr``, ``master_port``; or ``None`` when no
        torchrun variable is set.

    Raises:
        ConfigError: when only some variables are set, or values are not consistent integers.
    """
    env = dict(os.environ if environ is None else environ)
    present = [name for name in _TORCHRUN_VARS if name in env]
    if not present:
        return None
    missing = [name for name in _TORCHRUN_VARS if name not in env]
    if missing:
        raise ConfigError(
            f"distributed environment: {', '.join(present)} set but {', '.join(missing)} missing; start "
            "training with `torchrun --nproc_per_node=N -m medxlate train CONFIG` (which sets all of "
            f"{', '.join(_TORCHRUN_VARS)}) or unset them for a single process"
        )
    values: dict[str, int | str] = {"master_addr": env["MASTER_ADDR"]}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT"):
        try:
            values[name.lower()] = int(env[name])
        except ValueError as e:
            raise ConfigError(f"distributed environment: {name}={env[name]!r} is not an integer") from e
    rank, world = int(values["rank"]), int(values["world_size"])
    if world < 1 or not 0 <= rank < world or int(values["local_rank"]) < 0:
        raise ConfigError(
            f"distributed environment: RANK={rank}, LOCAL_RANK={values['local_rank']}, WORLD_SIZE={world}; "
            "expected 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0"
        )
    return values


def is_rank_zero(environ: dict[str, str] | None = None) -> bool:
    """True unless torchrun's ``RANK`` names another process (read before the process group exists,
    e.g. to open the tracker on rank 0 alone; the environment is checked by :func:`start_runtime`)."""
    return (os.environ if environ is None else environ).get("RANK", "0").strip() in ("0", "")


def start_runtime(device_name: str, batch_size: int, timeout_s: float = 1800.0) -> Runtime:
    """Set up this process for training: device and, under torchrun, the process group.

    Args:
        device_name: ``train.device`` (``auto``, ``cpu``, ``cuda``).
        batch_size: Global batch size (``data.batch_size``); must divide evenly across ranks.
        timeout_s: Timeout of the rendezvous and of collective operations.

    Returns:
        The runtime; call :func:`stop_runtime` when training ends.

    Raises:
        ConfigError: for an inconsistent torchrun environment, a batch size not divisible by the
            world size, a missing CUDA device, or an unreachable rendezvous.
    """
    env = torchrun_env()
    device = resolve_device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {device_name!r} asks for CUDA but no CUDA device is available")
    if env is None or int(env["world_size"]) == 1:
        return Runtime(device=device)
    world, rank, local_rank = int(env["world_size"]), int(env["rank"]), int(env["local_rank"])
    if batch_size % world:
        raise ConfigError(
            f"data.batch_size: {batch_size} is the global batch and must divide evenly across the "
            f"{world} processes (e.g. {max(world, batch_size // world * world)})"
        )
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if torch.distributed.is_initialized():  # e.g. a pipeline that set the group up before training
        return Runtime(device=device, rank=rank, world_size=world, local_rank=local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        torch.distributed.init_process_group(
            backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s)
        )
    except (RuntimeError, ValueError, OSError) as e:
        raise ConfigError(
            f"distributed rendezvous at {env['master_addr']}:{env['master_port']} failed for rank {rank} of "
            f"{world} ({backend}): {e}; check MASTER_ADDR/MASTER_PORT (torchrun --rdzv-endpoint) and that "
            "every node can reach it"
        ) from e
    return Runtime(device=device, rank=rank, world_size=world, local_rank=local_rank, owns_group=True)


def stop_runtime(runtime: Runtime) -> None:
    """Leave the process group this runtime created (no-op otherwise)."""
    if runtime.owns_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def apply_speed_settings(device: torch.device, cudnn_benchmark: bool) -> None:
    """cuDNN autotuning and TF32 matmuls on CUDA (no effect on CPU)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def check_compile_available(device: torch.device) -> None:
    """Raise before any work when ``torch.compile`` cannot work on this platform.

    Raises:
        ConfigError: without Triton on CUDA, or without a C++ compiler on CPU.
    """
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise ConfigError("train.compile: torch.compile on CUDA needs Triton, which is not installed")
        return
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if not compiler:
        raise ConfigError(
            "train.compile: torch.compile on CPU needs a C++ compiler (set CXX or install g++/clang++); "
            "none was found — set train.compile: false"
        )


def prepare_module(
    module: nn.Module, runtime: Runtime, channels_last: bool, compile_module: bool
) -> tuple[nn.Module, nn.Module]:
    """Memory format, SyncBatchNorm, DDP wrapping and compilation of one network.

    Args:
        module: The network (already on ``runtime.device``).
        runtime: This process's runtime.
        channels_last: Use the channels-last memory format (2D and 3D).
        compile_module: Wrap in ``torch.compile``.

    Returns:
        ``(trained, plain)``: the module to call in the training step (DDP and/or compiled) and the
        plain module whose ``state_dict`` is checkpointed (parameters shared with ``trained``).
    """
    if channels_last:
        fmt = torch.channels_last_3d if _spatial_dims(module) == 3 else torch.channels_last
        module = module.to(memory_format=fmt)
    if runtime.distributed and runtime.device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    plain = module
    trained: nn.Module = module
    if runtime.distributed:
        trained = nn.parallel.DistributedDataParallel(
            module,
            device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None,
            find_unused_parameters=False,  # every parameter takes part in each backward
            # buffers (BatchNorm running statistics) are broadcast from rank 0 at every forward (default)
        )
    if compile_module:
        trained = torch.compile(trained)
    return trained, plain


def _spatial_dims(module: nn.Module) -> int:
    for layer in module.modules():
        weight = getattr(layer, "weight", None)
        if isinstance(layer, nn.modules.conv._ConvNd) and weight is not None:
            return weight.dim() - 2
    return 2


def unwrap(module: nn.Module) -> nn.Module:
    """The plain network inside DDP and/or ``torch.compile`` wrappers."""
    inner: Any = module
    while True:
        if hasattr(inner, "_orig_mod"):
            inner = inner._orig_mod
        elif isinstance(inner, nn.parallel.DistributedDataParallel):
            inner = inner.module
        else:
            return inner


def quiet_other_ranks(runtime: Runtime) -> None:
    """Console output from rank 0 only: other ranks log warnings and errors alone."""
    if not runtime.is_main:
        logging.getLogger("medxlate").setLevel(logging.WARNING)
