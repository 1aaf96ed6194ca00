"""Command-line interface: a thin skin that parses arguments and calls one library function.

Every :class:`~medxlate.errors.MedxlateError` is printed as one ``error:`` line (exit code 2),
never as a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from medxlate.errors import MedxlateError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Medical image modality translation.")

SetOption = Annotated[list[str] | None, typer.Option("--set", help="Config override KEY.PATH=VALUE (repeatable).")]


def _overrides(items: list[str] | None) -> dict[str, object]:
    from medxlate.config import parse_override

    return dict(parse_override(item) for item in items or [])


@app.command()
def scan(
    root: Annotated[Path, typer.Argument(help="Top folder of a DICOM export.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts (includes series UIDs).")] = False,
    workers: Annotated[int | None, typer.Option(help="Parallel header readers (default: automatic).")] = None,
) -> None:
    """List the DICOM series of a tree (headers only) with their geometry and problems."""
    import json

    from medxlate.io import format_scan_table, scan_dicom

    result = scan_dicom(root, workers=workers)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        typer.echo(format_scan_table(result))


@app.command()
def prepare(
    input_dir: Annotated[
        Path, typer.Argument(help="DICOM export tree, or a folder with manifest.json of NIfTI pairs.")
    ],
    out_dir: Annotated[Path, typer.Argument(help="Dataset folder to write or update.")],
    config: Annotated[Path | None, typer.Option(help="Prepare config YAML (pairing, registration, splits).")] = None,
    id_map: Annotated[
        Path | None, typer.Option(help="CSV linking case ids to patients; must lie outside the dataset.")
    ] = None,
    set_: SetOption = None,
) -> None:
    """Turn an export into a clean, de-identified dataset (dataset.json + cases/)."""
    from medxlate.config import load_prepare_config
    from medxlate.data import run_prepare

    report = run_prepare(input_dir, out_dir, load_prepare_config(config, _overrides(set_)), id_map=id_map)
    typer.echo(report.summary())


@app.command()
def verify(dataset: Annotated[Path, typer.Argument(help="Prepared dataset folder.")]) -> None:
    """List every problem of a prepared dataset at once (exit code 2 if any)."""
    from medxlate.data import verify_dataset
    from medxlate.errors import InputDataError

    problems = verify_dataset(dataset)
    for problem in problems:
        typer.echo(str(problem))
    if problems:
        raise InputDataError(f"{dataset}: {len(problems)} problem(s) found")
    typer.echo(f"{dataset}: no problems found")


@app.command()
def fingerprint(dataset: Annotated[Path, typer.Argument(help="Prepared dataset folder.")]) -> None:
    """Record intensity percentiles and spacing statistics (fingerprint.json in the dataset)."""
    from medxlate.data import fingerprint_dataset, fingerprint_hash

    values = fingerprint_dataset(dataset)
    typer.echo(f"fingerprint: {Path(dataset) / 'fingerprint.json'} ({fingerprint_hash(values)})")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Experiment config YAML.")],
    set_: SetOption = None,
) -> None:
    """Train a model; the run is tracked in MLflow."""
    from medxlate.api import train as train_model
    from medxlate.config import load_config

    result = train_model(load_config(config, _overrides(set_)))
    typer.echo(f"checkpoint: {result.checkpoint}")
    typer.echo(f"run id: {result.run_id}")
    typer.echo("validation: " + ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()))


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint (.pt).")],
    dataset: Annotated[Path, typer.Argument(help="Prepared dataset folder.")],
    out_dir: Annotated[Path, typer.Option(help="Where the CSV and summary go.")] = Path("outputs/evaluation"),
    split: Annotated[str, typer.Option(help="Dataset split.")] = "val",
) -> None:
    """Evaluate a checkpoint on a dataset split (per-case CSV + summary JSON)."""
    from medxlate.evaluation import evaluate as run_evaluation

    result = run_evaluation(checkpoint, dataset, out_dir, split=split)
    typer.echo(f"per-case metrics: {result.csv_path}")
    typer.echo("mean: " + ", ".join(f"{k}={v:.4g}" for k, v in result.summary.items()))


@app.command()
def translate(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint (.pt).")],
    input_path: Annotated[Path, typer.Argument(help="Source volume (NIfTI, NRRD, MHA or DICOM folder).")],
    output_path: Annotated[Path, typer.Argument(help="Output NIfTI (.nii.gz).")],
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Translate one volume; the output overlays the input and is marked synthetic."""
    from medxlate.inference import Translator

    written = Translator.from_checkpoint(checkpoint, device=device).translate_file(input_path, output_path)
    typer.echo(f"synthetic volume: {written}")


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline recipe YAML.")],
    set_: SetOption = None,
) -> None:
    """Run a pipeline recipe: prepare -> train -> evaluate -> translate."""
    from medxlate.pipeline import run_pipeline
    from medxlate.tracking.mlflow_tracker import ui_command

    result = run_pipeline(pipeline, _overrides(set_), report=typer.echo)
    typer.echo("")
    for path in result.translated:
        typer.echo(f"synthetic NIfTI:  {path}")
    if result.montage:
        typer.echo(f"montage:          {result.montage}")
    if result.evaluation:
        typer.echo("evaluation (val): " + _metric_line(result.evaluation))
    if result.tracking_uri:
        typer.echo(f"MLflow run:       {result.run_id}")
        typer.echo(f"open the UI:      {ui_command(result.tracking_uri)}")


def _metric_line(values: dict[str, float]) -> str:
    keys = (
        "ssim_body",
        "psnr_body",
        "mae_body",
        "ceiling_ssim_body",
        "ceiling_psnr_body",
        "ceiling_mae_body",
    )
    return ", ".join(f"{k}={values[k]:.4g}" for k in keys if k in values)


def main() -> None:
    """Console entry point: run the app, turning medxlate errors into one-line messages."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # MONAI announces at import that an optional NVIDIA decoder is absent; it is irrelevant here.
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    try:
        app(standalone_mode=False)
    except MedxlateError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors arrive here with standalone_mode=False
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
