"""Pipeline recipes: which data, which experiment config, which stages, where outputs go."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from medxlate.config.schema import _Frozen

Stage = Literal["prepare", "train", "evaluate", "translate"]


class PipelineConfig(_Frozen):
    """An end-to-end recipe (``medxlate run PIPELINE.yaml``). Relative paths are resolved from the
    current working directory.

    Attributes:
        name: Recipe name.
        config: Experiment config (YAML) used by the train stage.
        input: The prepare stage's input: a folder with a ``manifest.json`` of NIfTI pairs, or a DICOM export.
        prepare_config: Prepare settings (pairing, registration, splits); ``None`` for the defaults.
        id_map: Where prepare writes the table linking case ids to patients (outside ``output_dir``).
        output_dir: Everything the pipeline writes goes below this folder.
        overrides: Dotted-key overrides applied to the experiment config.
        stages: Stages to run, in order.
        translate_split: Which dataset split the translate stage writes synthetic volumes for.
        evaluate_protocol: The evaluate stage's protocol: ``default`` (SSIM/PSNR/MAE in target
            units) or ``synthrad2025`` (synthetic CT vs. real CT in HU; for MR -> CT recipes).
    """

    name: str = Field(min_length=1)
    config: Path
    input: Path
    prepare_config: Path | None = None
    id_map: Path | None = None
    output_dir: Path
    overrides: dict[str, Any] = Field(default_factory=dict)
    stages: tuple[Stage, ...] = ("prepare", "train", "evaluate", "translate")
    translate_split: Literal["train", "val", "test"] = "val"
    evaluate_protocol: Literal["default", "synthrad2025"] = "default"
