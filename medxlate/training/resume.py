"""Crash-safe resumption: RNG states, the resume checkpoint, compatibility checks, stale temp files.

A training run keeps one resume checkpoint, ``last.pt`` in its output folder, rewritten atomically
(temporary sibling + rename, :mod:`medxlate.io.atomic`) every ``train.checkpoint_every`` steps, at
each epoch end and when SIGTERM/SIGINT arrives, so the file on disk is always a complete checkpoint.
It holds, besides weights and optimiser states, every random state (Python, NumPy, torch CPU and
CUDA, per rank) and the sampler's ``(epoch, position)``, so training continues mid-epoch with the
same batches, dropout masks and augmentations an uninterrupted run would have used.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medxlate.checkpoint import INFERENCE_KIND
from medxlate.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
INFERENCE_NAME = "model.pt"  # the slim inference checkpoint written beside last.pt at the end of a run
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp.*$")  # names made by medxlate.io.atomic.atomic_path
# Settings that define the model, the data it sees and the optimisation: a resumed run must match them.
_MUST_MATCH = ("data.", "model.", "loss.", "xray.", "train.seed", "train.lr", "train.beta1", "train.beta2")
_MAY_DIFFER = ("data.dataset",)


def rng_states() -> dict[str, Any]:
    """Every global random state of this process, as tensors and plain values (``weights_only``-safe)."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, list(mt_state), gauss],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore states saved by :func:`rng_states`."""
    version, mt_state, gauss = states["python"]
    random.setstate((int(version), tuple(int(v) for v in mt_state), gauss))
    numpy_state = states["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def resume_path(resume: str | Path | None, out_dir: Path) -> Path | None:
    """The checkpoint to resume from: ``latest`` is ``OUT/last.pt`` when present (else a fresh start).

    Raises:
        ConfigError: if an explicit checkpoint path does not exist.
    """
    if resume is None:
        return None
    if str(resume) == "latest":
        latest = out_dir / CHECKPOINT_NAME
        if latest.is_file():
            return latest
        logger.warning("resume: no checkpoint in %s yet; starting from scratch", out_dir)
        return None
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(f"train.resume: checkpoint {path} not found")
    return path


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of an atomic write (left there only by an interrupted one)."""
    return _TEMPORARY.match(name) is not None


def clean_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporary files an interrupted atomic write left in ``folder`` (e.g. SIGKILL mid-save).

    Returns:
        The files removed.
    """
    if not folder.is_dir():
        return []
    removed = [path for path in sorted(folder.iterdir()) if path.is_file() and is_temporary(path.name)]
    for path in removed:
        path.unlink(missing_ok=True)
        logger.info("removed %s, left by an interrupted checkpoint write", path.name)
    return removed


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Settings that must match between a checkpoint's config and the current one but do not.

    Args:
        saved: The checkpoint's ``config`` (JSON form).
        current: The current config (``model_dump(mode="json")``).

    Returns:
        ``"key: checkpoint X, config Y"`` lines, sorted; empty when the run may be resumed.
    """
    old, new = _flatten(saved), _flatten(current)
    keys = sorted(
        key
        for key in set(old) | set(new)
        if key.startswith(_MUST_MATCH) and key not in _MAY_DIFFER and old.get(key) != new.get(key)
    )
    return [f"{key}: checkpoint {old.get(key, '(absent)')!r}, config {new.get(key, '(absent)')!r}" for key in keys]


def state_dict_differences(saved: dict[str, torch.Tensor], module: torch.nn.Module) -> list[str]:
    """Parameter/buffer names missing, unexpected or of another shape in a saved state dict."""
    expected = module.state_dict()
    problems = [f"missing {name}" for name in expected if name not in saved]
    problems += [f"unexpected {name}" for name in saved if name not in expected]
    problems += [
        f"{name}: shape {tuple(saved[name].shape)} in the checkpoint, {tuple(tensor.shape)} in the model"
        for name, tensor in expected.items()
        if name in saved and tuple(saved[name].shape) != tuple(tensor.shape)
    ]
    return problems


def check_compatible(content: dict[str, Any], path: Path, current: dict[str, Any], modules: dict[str, Any]) -> None:
    """Refuse, naming every differing key, a checkpoint made with another model/data/optimiser setup.

    Args:
        content: The loaded checkpoint.
        path: Its file (for messages).
        current: The current config (JSON form).
        modules: ``{"generator": module, "discriminator": module}`` to compare state dicts with.

    Raises:
        CheckpointError: listing the differing config keys and parameter names.
    """
    if content.get("kind") == INFERENCE_KIND:
        raise CheckpointError(
            f"train.resume: {path} is an inference checkpoint (generator only); resuming needs the full "
            "checkpoint (last.pt in the run folder, or the run's 'checkpoint/' artifact in MLflow)"
        )
    problems = config_differences(content.get("config", {}), current)
    for name, module in modules.items():
        if name not in content:
            problems.append(f"no {name} weights")
            continue
        problems += [f"{name} {item}" for item in state_dict_differences(content[name], module)]
    if problems:
        shown = "; ".join(problems[:12]) + (f"; and {len(problems) - 12} more" if len(problems) > 12 else "")
        raise CheckpointError(f"train.resume: {path} was made for a different setup: {shown}")
