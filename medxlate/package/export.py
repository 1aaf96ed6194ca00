"""``medxlate export``: write a checkpoint as a self-describing model package, atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medxlate.errors import OutputError
from medxlate.package.card import model_record, render_card
from medxlate.package.manifest import CARD_FILE, RECORD_FILE, WEIGHTS_FILE, is_package, write_manifest

__all__ = ["export_package", "packaged_checkpoint"]

#: config fields holding paths of the training machine: left out of a package (they may name people or places)
LOCAL_PATHS = (
    ("data", "dataset"),
    ("data", "cache_dir"),
    ("train", "output_dir"),
    ("train", "resume"),
    ("tracking", "tracking_uri"),
)
NOT_PACKAGED = "<not packaged>"


def packaged_checkpoint(content: dict[str, Any]) -> dict[str, Any]:
    """The inference checkpoint a package holds: no optimiser or RNG state, no local paths in its config.

    Args:
        content: A loaded checkpoint (full or inference).

    Returns:
        A payload for :func:`medxlate.checkpoint.save_checkpoint`.
    """
    from medxlate.checkpoint import inference_checkpoint

    payload = inference_checkpoint(content)
    config = {
        key: dict(value) if isinstance(value, dict) else value for key, value in payload.get("config", {}).items()
    }
    for section, key in LOCAL_PATHS:
        if isinstance(config.get(section), dict) and config[section].get(key) is not None:
            config[section][key] = NOT_PACKAGED
    return {**payload, "config": config} if "config" in payload else payload


def export_package(
    checkpoint: str | Path, out_dir: str | Path, license_name: str = "unspecified", overwrite: bool = False
) -> Path:
    """Write ``checkpoint`` (a checkpoint file or a package) as a model package in ``out_dir``.

    The folder is written under a temporary name and renamed when complete, so it is either absent
    or whole. It holds ``model.pt`` (:func:`packaged_checkpoint`), ``model.json`` and
    ``MODEL_CARD.md`` (:mod:`medxlate.package.card`) and ``SHA256SUMS``.

    Args:
        checkpoint: A medxlate checkpoint (training or inference) or a package folder.
        out_dir: The package folder to create.
        license_name: The licence stated in the card.
        overwrite: Replace an existing package at ``out_dir``.

    Returns:
        ``out_dir``.

    Raises:
        CheckpointError: if ``checkpoint`` is not a usable checkpoint or package.
        OutputError: ``out_dir`` is a non-empty folder (without ``overwrite``; with it, unless it is
            a model package), a file, or holds ``checkpoint``.
    """
    from medxlate import __version__
    from medxlate.checkpoint import load_checkpoint, save_checkpoint
    from medxlate.inference import Translator
    from medxlate.io.atomic import atomic_dir
    from medxlate.io.guard import guard_output

    out_dir = Path(out_dir)
    guard_output(out_dir, [checkpoint], "export folder")
    _check_destination(out_dir, overwrite)
    translator = Translator.from_checkpoint(checkpoint, device="cpu")  # the checks loading makes, before writing
    content = packaged_checkpoint(load_checkpoint(translator.provenance["checkpoint"]))
    parameters = sum(p.numel() for p in translator.generator.parameters())
    record = model_record(content, parameters, license_name, __version__)
    with atomic_dir(out_dir, replace_existing=overwrite) as tmp:
        save_checkpoint(content, tmp / WEIGHTS_FILE)
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        (tmp / CARD_FILE).write_text(render_card(record), encoding="utf-8")
        write_manifest(tmp)
    return out_dir


def _check_destination(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder; expected a new or empty folder for the package")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise OutputError(f"{out_dir}: folder exists and is not empty; choose a new folder or pass --overwrite")
    if not is_package(out_dir):
        raise OutputError(
            f"{out_dir}: not a model package (no SHA256SUMS); --overwrite only replaces a package, never another folder"
        )
