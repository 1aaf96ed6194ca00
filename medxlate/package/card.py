"""A model's card: ``model.json`` (machine-readable) and ``MODEL_CARD.md`` (for people), from its checkpoint.

Everything comes from what the checkpoint records: task and direction, generator and its size,
training data digest and case counts, the training domain (spacing, intensities, field of view),
the validation metrics and how they were computed, the medxlate versions. No path, case id or
other identifier of the training machine or its data is written.
"""

from __future__ import annotations

import math
from typing import Any

from medxlate.package.manifest import PACKAGE_FORMAT, PACKAGE_VERSION, WEIGHTS_FILE

__all__ = ["SYNTHETIC_STATEMENT", "model_record", "render_card"]

SYNTHETIC_STATEMENT = (
    "Outputs are synthetic images computed by a neural network, not measurements of the patient; they are "
    "for research only and not for diagnosis, treatment planning or any clinical decision."
)
INTENDED_USE = (
    "Research on image translation between modalities: translate {source} volumes into synthetic {target} "
    "volumes resembling the training data (see the training domain), then inspect or evaluate them."
)
_SAME_GRID_PROTOCOL = (
    "During training, after epoch {epoch}: each case of the validation split translated whole exactly as "
    "`medxlate translate` does (inference '{strategy}', on the training spacing) and compared with its real "
    "target in target units; SSIM/PSNR data range = the CT window width for a CT target, each reference's "
    "max - min for an MR target; '*_body' values inside the body mask; mean over cases. The validation split "
    "comes from the training dataset: these figures are not an independent test."
)
_LIFT_PROTOCOL = (
    "During training, after epoch {epoch}: for each CT of the validation split, DRR views rendered with the "
    "model's geometry and reconstructed; 3D SSIM/PSNR/MAE in HU on the model grid with the CT window width as "
    "data range ('*_body' inside the body), 'reprojection_mae' between DRRs of the reconstruction and the "
    "input views; mean over cases. Views are DRRs, not radiographs: real radiographs may do worse."
)


def model_record(content: dict[str, Any], parameters: int, license_name: str, exported_with: str) -> dict[str, Any]:
    """The ``model.json`` record of a loaded (inference) checkpoint.

    Args:
        content: The checkpoint (:func:`medxlate.checkpoint.load_checkpoint`).
        parameters: The generator's number of parameters.
        license_name: The licence the model is shared under (``"unspecified"`` if not stated).
        exported_with: The medxlate version writing the package.

    Returns:
        A JSON-able dict.
    """
    prep = content.get("preprocessing") or {}
    task = prep.get("task") or {}
    spec = content.get("generator_spec") or {}
    strategy = content.get("inference") or {"kind": "slices"}
    source, target = content.get("source_modality", "?"), content.get("target_modality", "?")
    protocol = _LIFT_PROTOCOL if strategy.get("kind") == "lift" else _SAME_GRID_PROTOCOL
    return {
        "format": PACKAGE_FORMAT,
        "format_version": PACKAGE_VERSION,
        "name": (content.get("config") or {}).get("name"),
        "weights": WEIGHTS_FILE,
        "task": {"name": task.get("name"), "direction": f"{source} -> {target}", "geometry": task.get("geometry")},
        "source_modality": source,
        "target_modality": target,
        "architecture": {**spec, "parameters": parameters},
        "inference": strategy,
        "preprocessing": prep,
        "training_domain": _training_domain(prep),
        "training_data": content.get("training_data") or {"digest": content.get("dataset_fingerprint")},
        "validation": {
            "epoch": content.get("epoch"),
            "step": content.get("step"),
            "metrics": {key: _finite(value) for key, value in (content.get("metrics") or {}).items()},
            "protocol": protocol.format(epoch=content.get("epoch", "?"), strategy=strategy.get("kind")),
        },
        "intended_use": INTENDED_USE.format(source=source, target=target),
        "synthetic_outputs": SYNTHETIC_STATEMENT,
        "license": license_name,
        "medxlate_version": content.get("medxlate_version"),
        "exported_with": exported_with,
        "mlflow_run_id": content.get("mlflow_run_id"),
    }


def _finite(value: Any) -> Any:
    """A metric as JSON can hold it: NaN/inf (a diverged case) become ``None``."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _training_domain(prep: dict[str, Any]) -> dict[str, Any]:
    domain = prep.get("domain") or {}
    return {
        "spacing_mm": {key: domain.get(f"spacing_{key}") for key in ("median", "min", "max")},
        "field_of_view_mm": {key: domain.get(f"fov_{key}") for key in ("min", "max")},
        "resampled_to_mm": prep.get("pixdim"),
        "source_window": prep.get("source_window"),
        "source_percentiles_0_5_99_5": domain.get("source_percentiles"),
        "target_range": prep.get("target_range"),
        "recorded": bool(domain),
    }


def _value(value: Any) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return " x ".join(_value(v) for v in value)
    return str(value)


def _range(value: Any) -> str:
    return f"[{', '.join(_value(v) for v in value)}]" if isinstance(value, list | tuple) else _value(value)


def render_card(record: dict[str, Any]) -> str:
    """``MODEL_CARD.md``: the record of :func:`model_record` for people."""
    arch, data, domain, validation = (
        record["architecture"],
        record["training_data"],
        record["training_domain"],
        record["validation"],
    )
    cases = data.get("cases") or {}
    metrics = validation["metrics"]
    lines = [
        f"# {record['name'] or 'medxlate model'}: {record['task']['direction']}",
        "",
        f"**{record['synthetic_outputs']}**",
        "",
        "## Model",
        "",
        f"- Task: `{record['task']['name']}` ({record['task']['direction']}, geometry `{record['task']['geometry']}`)",
        f"- Generator: `{arch.get('name')}`, {arch.get('spatial_dims')}D, {arch['parameters']:,} parameters, "
        f"params `{arch.get('params')}`",
        f"- Inference: `{record['inference'].get('kind')}`",
        f"- Licence: {record['license']}",
        f"- Trained with medxlate {_value(record['medxlate_version'])}; packaged with {record['exported_with']}",
        f"- MLflow run: {_value(record['mlflow_run_id'])}",
        "",
        "## Intended use",
        "",
        record["intended_use"],
        "",
        "## Training data",
        "",
        f"- Digest: `{_value(data.get('digest'))}`" + (f" ({data['digest_of']})" if data.get("digest_of") else ""),
        f"- Cases: {', '.join(f'{n} {split}' for split, n in cases.items()) or 'not recorded'}",
        "",
        "## Training domain (inputs far outside it are warned about at translation)",
        "",
        f"- Spacing (mm, RAS x y z): median {_value(domain['spacing_mm']['median'])}, "
        f"min {_value(domain['spacing_mm']['min'])}, max {_value(domain['spacing_mm']['max'])}",
        f"- Field of view (mm): min {_value(domain['field_of_view_mm']['min'])}, "
        f"max {_value(domain['field_of_view_mm']['max'])}",
        f"- Source window: {_range(domain['source_window'])}; source 0.5/99.5 percentiles: "
        f"{_range(domain['source_percentiles_0_5_99_5'])}; target range: {_range(domain['target_range'])}",
        "",
        "## Validation",
        "",
        validation["protocol"],
        "",
        "| metric | value |",
        "| --- | --- |",
        *([f"| {key} | {_value(value)} |" for key, value in metrics.items()] or ["| (none recorded) | |"]),
        "",
        "## Files",
        "",
        "`model.pt` (inference checkpoint, loads with `torch.load(weights_only=True)`), `model.json` (this card, "
        "machine-readable), `SHA256SUMS` (checked on loading). Load with "
        "`medxlate.Translator.from_pretrained(folder)` or `medxlate translate FOLDER INPUT OUTPUT`.",
        "",
    ]
    return "\n".join(lines)
