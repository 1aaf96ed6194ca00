"""Test helper run by torchrun: ``medxlate train`` that also dumps each rank's trained weights.

DDP-wrapped networks are recorded as they are built; after training every rank saves their
parameters to ``DUMP_DIR/rank{RANK}.pt`` so the test can compare replicas.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

wrapped: list[torch.nn.Module] = []
_original_init = torch.nn.parallel.DistributedDataParallel.__init__


def _recording_init(self: torch.nn.parallel.DistributedDataParallel, module: torch.nn.Module, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    _original_init(self, module, *args, **kwargs)
    wrapped.append(module)


def main() -> None:
    """Run the CLI, then dump the weights of every DDP-wrapped network of this rank."""
    torch.nn.parallel.DistributedDataParallel.__init__ = _recording_init  # type: ignore[method-assign]
    from medxlate.cli import main as cli_main

    sys.argv = ["medxlate", *sys.argv[1:]]
    try:
        cli_main()
    except SystemExit as e:
        if e.code:
            raise
    names = ("generator", "discriminator")
    state = {name: dict(module.state_dict()) for name, module in zip(names, wrapped, strict=True)}
    torch.save(state, Path(os.environ["DUMP_DIR"]) / f"rank{os.environ['RANK']}.pt")


if __name__ == "__main__":
    main()
