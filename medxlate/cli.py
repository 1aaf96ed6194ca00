"""Command-line interface: a thin skin that parses arguments and calls one library function.

Nothing heavy is imported at module level (each command imports what it needs), so ``medxlate
--help`` answers at once. Errors never end in a traceback; each is one ``error:`` line on stderr:

- exit 2: bad input (every :class:`~medxlate.errors.MedxlateError`) or a usage error;
- exit 1: the system refused a read or write (``OSError``: no space, no permission...);
- exit 130: interrupted (Ctrl-C), so ``medxlate train ... && medxlate evaluate ...`` stops.

With ``--json`` a command prints one JSON document on stdout and nothing else there; messages and
progress bars go to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from medxlate import __version__
from medxlate.errors import MedxlateError, TrainingInterrupted

EXIT_BAD_INPUT = 2
EXIT_OS_ERROR = 1
EXIT_INTERRUPTED = 130

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Medical image modality translation.",
    rich_markup_mode=None,  # plain help: fast (no rich import) and readable in logs
    pretty_exceptions_enable=False,
)

SetOption = Annotated[list[str] | None, typer.Option("--set", help="Config override KEY.PATH=VALUE (repeatable).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (nothing else there).")]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"medxlate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """Medical image modality translation."""


OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace an earlier run in train.output_dir (train.overwrite: true).")
]


def _overrides(items: list[str] | None, overwrite: bool = False) -> dict[str, object]:
    from medxlate.config import parse_override

    values: dict[str, object] = dict(parse_override(item) for item in items or [])
    if overwrite:
        values["train.overwrite"] = True
    return values


def _echo_json(data: Any) -> None:
    """One JSON document on stdout; paths as strings, non-finite numbers as ``null``."""
    import json

    typer.echo(json.dumps(_jsonable(data), indent=2, allow_nan=False))


def _jsonable(value: Any) -> Any:
    import dataclasses
    import math

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@app.command()
def scan(
    root: Annotated[Path, typer.Argument(help="Top folder of a DICOM export.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts (no UIDs or identifiers unless --identifiers).")
    ] = False,
    identifiers: Annotated[
        bool,
        typer.Option(
            "--identifiers",
            help="With --json: add series/study/frame-of-reference UIDs and patient identifiers "
            "(for pairing scripts inside the hospital; never share this output).",
        ),
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Parallel header readers (default: automatic).")] = None,
) -> None:
    """List the DICOM series of a tree (headers only) with their geometry and problems."""
    from medxlate.io import format_scan_table, scan_dicom

    if identifiers and not as_json:
        raise typer.BadParameter("only applies to --json output", param_hint="--identifiers")
    result = scan_dicom(root, workers=workers)
    if as_json:
        _echo_json(result.to_json(include_identifiers=identifiers))
    else:
        typer.echo(format_scan_table(result))


@app.command()
def prepare(
    input_dir: Annotated[
        Path,
        typer.Argument(
            help="DICOM export tree, a folder with manifest.json of NIfTI pairs, or one folder per case "
            "(ct/mr/mask files, SynthRAD layout)."
        ),
    ],
    out_dir: Annotated[Path, typer.Argument(help="Dataset folder to write or update.")],
    config: Annotated[Path | None, typer.Option(help="Prepare config YAML (pairing, registration, splits).")] = None,
    id_map: Annotated[
        Path | None, typer.Option(help="CSV linking case ids to patients; must lie outside the dataset.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --id-map file that is not this dataset's id map.")
    ] = False,
    set_: SetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Turn an export into a clean, de-identified dataset (dataset.json + cases/)."""
    from medxlate.config import load_prepare_config
    from medxlate.data import run_prepare

    cfg = load_prepare_config(config, _overrides(set_))
    report = run_prepare(input_dir, out_dir, cfg, id_map=id_map, force=force)
    if as_json:
        _echo_json(report)
    else:
        typer.echo(report.summary())


@app.command()
def verify(
    dataset: Annotated[Path, typer.Argument(help="Prepared dataset folder.")], as_json: JsonOption = False
) -> None:
    """List every problem of a prepared dataset at once (exit code 2 if any)."""
    from medxlate.data import verify_dataset
    from medxlate.errors import InputDataError

    problems = verify_dataset(dataset)
    if as_json:
        _echo_json({"dataset": dataset, "ok": not problems, "problems": problems})
    else:
        for problem in problems:
            typer.echo(str(problem))
    if problems:
        raise InputDataError(f"{dataset}: {len(problems)} problem(s) found")
    if not as_json:
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
    as_json: JsonOption = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the latest checkpoint in the output folder.")
    ] = False,
    resume_from: Annotated[
        Path | None, typer.Option("--resume-from", help="Continue from this checkpoint (mid-epoch included).")
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a model; the run is tracked in MLflow. Also under `torchrun --nproc_per_node=N -m medxlate`."""
    from medxlate.api import train as train_model
    from medxlate.config import load_config

    overrides = _overrides(set_, overwrite)
    if resume or resume_from is not None:
        overrides["train.resume"] = str(resume_from) if resume_from is not None else "latest"
    try:
        result = train_model(load_config(config, overrides))
    except TrainingInterrupted as e:
        _stopped(e)
    if result.rank != 0:  # console output from rank 0 only
        return
    if as_json:
        _echo_json({"checkpoint": result.checkpoint, "run_id": result.run_id, "metrics": result.metrics})
        return
    typer.echo(f"checkpoint: {result.checkpoint}")
    typer.echo(f"run id: {result.run_id}")
    if result.registered_model:
        typer.echo(f"registered model: {result.registered_model}")
    typer.echo("validation: " + ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()))


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint (.pt) or model package folder.")],
    dataset: Annotated[
        Path,
        typer.Argument(
            help="Prepared dataset folder; for an X-ray -> CT model also a folder of CT volumes or a DICOM tree."
        ),
    ],
    out_dir: Annotated[Path, typer.Option(help="Where the CSV and summary go.")] = Path("outputs/evaluation"),
    split: Annotated[str, typer.Option(help="Dataset split.")] = "val",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    as_json: JsonOption = False,
    protocol: Annotated[
        str, typer.Option(help="default, or synthrad2025 (the SynthRAD2025 challenge's MAE/PSNR/MS-SSIM of a sCT).")
    ] = "default",
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Box plots and a worst/best case montage (PNG).")
    ] = True,
    segmenter: Annotated[
        str | None,
        typer.Option(
            help="Command segmenting the synthetic image, e.g. 'mytool {input} {output}': per-label Dice/HD95 "
            "against each case's label map (--labels)."
        ),
    ] = None,
    labels: Annotated[str, typer.Option(help="Dataset role holding each case's label map.")] = "labels",
) -> None:
    """Evaluate a checkpoint on a dataset split (per-case CSV + summary JSON + pictures).

    A model whose target is CT also gets Dice/HD95 (mm) of bone and air inside the body.
    """
    from medxlate.evaluation import evaluate as run_evaluation

    result = run_evaluation(
        checkpoint,
        dataset,
        out_dir,
        split=split,
        device=device,
        progress=True,
        protocol=protocol,
        report=report,
        segmenter=segmenter,
        labels=labels,
    )
    if as_json:
        _echo_json(
            {
                "split": split,
                "per_case": result.per_case,
                "mean": result.summary,
                "csv": result.csv_path,
                "summary": result.summary_path,
                "report": list(result.pictures),
            }
        )
        return
    typer.echo(f"per-case metrics: {result.csv_path}")
    for picture in result.pictures:
        typer.echo(f"report: {picture}")
    typer.echo("mean: " + ", ".join(f"{k}={v:.4g}" for k, v in result.summary.items()))


@app.command()
def translate(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint (.pt) or model package folder.")],
    input_path: Annotated[
        list[Path],
        typer.Argument(
            help="Source volume (NIfTI, NRRD, MHA, DICOM series folder), or for a batch: a folder of volumes, "
            "a DICOM tree (every series of the model's source modality) or a prepared dataset. For an "
            "X-ray -> CT model: one radiograph per view (CR/DX DICOM, PNG, TIFF) in the model's view order, "
            "e.g. PA.dcm LAT.dcm.",
        ),
    ],
    output_path: Annotated[
        Path,
        typer.Argument(help="Output NIfTI (.nii.gz), a new folder with --format dicom, or the batch output folder."),
    ],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    as_json: JsonOption = False,
    output_format: Annotated[
        str, typer.Option("--format", help="nifti, or dicom: a series in the source's study (OUTPUT is a folder).")
    ] = "nifti",
    split: Annotated[str, typer.Option(help="Dataset split, when INPUT is a prepared dataset.")] = "test",
    pixel_mm: Annotated[
        float | None,
        typer.Option(
            "--pixel-mm",
            help="X-ray -> CT: detector pixel spacing (mm) of the radiographs; needed for files that state none "
            "(PNG, TIFF), used instead of the files' own when given.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="X-ray -> CT: translate radiographs the domain checks refuse (not CR/DX, a localizer, another "
            "view, a blank image), with a warning each.",
        ),
    ] = False,
    identifiers: Annotated[
        bool,
        typer.Option(
            "--identifiers",
            help="Batch: list inputs by path in translation_summary.csv and messages (input folder paths of a "
            "hospital export may name patients; without it they are <redacted>).",
        ),
    ] = False,
) -> None:
    """Translate one volume or a batch, or reconstruct a CT from radiographs; outputs are marked synthetic."""
    from medxlate.errors import ConfigError, InputDataError
    from medxlate.inference import LiftStrategy, Translator
    from medxlate.inference.batch import is_batch_input, translate_batch
    from medxlate.io.save import sidecar_path

    if output_format not in ("nifti", "dicom"):
        raise ConfigError(f"--format must be 'nifti' or 'dicom', got {output_format!r}")
    translator = Translator.from_checkpoint(checkpoint, device=device, progress=True)
    if isinstance(translator.strategy, LiftStrategy):
        written = translator.translate_radiographs(input_path, output_path, pixel_mm, output_format, force)  # type: ignore[arg-type]
        if as_json:
            _echo_json({"output": written, "provenance": sidecar_path(written), "input": input_path})
        else:
            typer.echo(f"synthetic CT {'DICOM series' if output_format == 'dicom' else 'volume'}: {written}")
        return
    for option, given in (("--pixel-mm", pixel_mm is not None), ("--force", force)):
        if given:
            raise ConfigError(
                f"{option} applies to X-ray -> CT models (radiograph inputs); this model translates volumes"
            )
    if len(input_path) != 1:
        raise InputDataError(
            f"this model translates one volume (or one batch folder) per call, got {len(input_path)} inputs: "
            + " ".join(str(p) for p in input_path)
        )
    source = input_path[0]
    if not is_batch_input(source):
        if identifiers:
            raise typer.BadParameter("only applies to a batch (INPUT a folder of volumes)", param_hint="--identifiers")
        written = translator.translate_file(source, output_path, output_format=output_format)  # type: ignore[arg-type]
        if as_json:
            _echo_json({"output": written, "provenance": sidecar_path(written), "input": source})
        else:
            typer.echo(f"synthetic {'DICOM series' if output_format == 'dicom' else 'volume'}: {written}")
        return
    result = translate_batch(
        translator,
        source,
        output_path,
        output_format=output_format,  # type: ignore[arg-type]
        split=split,
        progress=not as_json,
        identifiers=identifiers,
    )
    counts = {status: sum(r["status"] == status for r in result.rows) for status in ("translated", "skipped", "failed")}
    if as_json:
        _echo_json({"counts": counts, "summary": result.summary_path, "outputs": result.rows})
    else:
        typer.echo(", ".join(f"{n} {status}" for status, n in counts.items()) + f"; summary: {result.summary_path}")
    for row in result.failed:
        typer.echo(f"failed: {row['input']}: {row['message']}", err=True)
    if result.failed:
        raise InputDataError(f"{len(result.failed)} of {len(result.rows)} inputs failed; see {result.summary_path}")


@app.command("import-pix2pix")
def import_pix2pix(
    weights: Annotated[Path, typer.Argument(help="Generator state dict saved by pix2pix/CycleGAN (latest_net_G.pth).")],
    output: Annotated[Path, typer.Argument(help="medxlate checkpoint to write (.pt), for 'medxlate translate'.")],
    task: Annotated[str, typer.Option(help="ct2mr or mr2ct (required).")],
    window: Annotated[
        tuple[float, float], typer.Option(help="CT window (HU) the training images' [-1, 1] came from (required).")
    ],
    net_g: Annotated[
        str, typer.Option("--netG", help="unet_256, unet_128, resnet_9blocks or resnet_6blocks (as trained).")
    ] = "unet_256",
    norm: Annotated[str, typer.Option(help="batch or instance (as trained).")] = "batch",
    input_nc: Annotated[int, typer.Option("--input-nc", help="Input channels: 2k+1 = a slice and k each side.")] = 1,
    output_nc: Annotated[int, typer.Option("--output-nc", help="Output channels (1).")] = 1,
    ngf: Annotated[int, typer.Option(help="Channels of the first layer (as trained).")] = 64,
    mr_percentiles: Annotated[
        tuple[float, float], typer.Option("--mr-percentiles", help="MR percentiles scaled to [-1, 1] (mr2ct input).")
    ] = (0.5, 99.5),
    mr_range: Annotated[
        tuple[float, float] | None, typer.Option("--mr-range", help="ct2mr: MR intensities the output maps to.")
    ] = None,
    pixdim: Annotated[
        tuple[float, float, float] | None, typer.Option(help="Spacing (mm) to translate on; default: the input's.")
    ] = None,
) -> None:
    """Import a pix2pix/CycleGAN generator (junyanz/pytorch-CycleGAN-and-pix2pix) as a medxlate checkpoint."""
    from medxlate.inference.imported import import_pix2pix as write_import

    written = write_import(
        weights,
        output,
        netG=net_g,
        norm=norm,
        task=task,
        window=window,
        input_nc=input_nc,
        output_nc=output_nc,
        ngf=ngf,
        mr_percentiles=mr_percentiles,
        mr_range=mr_range,
        pixdim=pixdim,
    )
    typer.echo(f"checkpoint: {written}")


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Trained checkpoint (.pt) or model package folder.")],
    out_dir: Annotated[Path, typer.Argument(help="New (or empty) folder for the package.")],
    export_format: Annotated[str, typer.Option("--format", help="medxlate: a model package.")] = "medxlate",
    license_name: Annotated[
        str, typer.Option("--license", help="Licence stated in the model card, e.g. CC-BY-4.0.")
    ] = "unspecified",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing package in OUT_DIR.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a model package: weights, model.json, MODEL_CARD.md and SHA256SUMS (see docs/model_package.md)."""
    from medxlate.errors import ConfigError
    from medxlate.package import export_package

    if export_format != "medxlate":
        raise ConfigError(f"--format must be 'medxlate' (a model package), got {export_format!r}")
    written = export_package(checkpoint, out_dir, license_name, overwrite)
    if as_json:
        _echo_json({"package": written, "files": sorted(p.name for p in written.iterdir())})
    else:
        typer.echo(f"model package: {written}")


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline recipe YAML.")],
    set_: SetOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Run a pipeline recipe: prepare -> train -> evaluate -> translate."""
    from medxlate.pipeline import run_pipeline
    from medxlate.tracking.mlflow_tracker import ui_command, ui_url

    try:
        result = run_pipeline(pipeline, _overrides(set_, overwrite), report=typer.echo)
    except TrainingInterrupted as e:
        _stopped(e)
    if result.rank != 0:
        return  # a torchrun rank other than 0: rank 0 reports
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
        url = ui_url(result.tracking_uri, result.run_id) if result.run_id else None
        if url:  # the classic ML view of the run (MLflow 3's UI opens in its GenAI view otherwise)
            typer.echo(f"then the run:     {url}")


def _metric_line(values: dict[str, float]) -> str:
    keys = (
        "ssim_body",
        "psnr_body",
        "mae_body",
        "ceiling_ssim_body",
        "ceiling_psnr_body",
        "ceiling_mae_body",
        "reprojection_mae",  # X-ray -> CT: DRRs of the synthetic CT against the input views
        "mae",  # the SynthRAD2025 protocol reports mae, psnr and ms_ssim only
        "psnr",
        "ms_ssim",
    )
    if "ssim_body" in values:  # default protocol: the body-mask figures are the headline
        keys = keys[:7]
    return ", ".join(f"{k}={values[k]:.4g}" for k in keys if k in values)


def _usage_error_types() -> tuple[type[Exception], ...]:
    """The click exception classes typer raises: its bundled copy (typer >= 0.20) or click itself."""
    types: list[type[Exception]] = []
    try:
        from typer._click.exceptions import ClickException as BundledClickException

        types.append(BundledClickException)
    except ImportError:  # older typer: standalone click
        pass
    try:
        from click import ClickException

        types.append(ClickException)
    except ImportError:
        pass
    return tuple(types)


def _usage_message(error: Exception) -> str:
    ctx = getattr(error, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return f"{error.format_message()}{hint}"  # type: ignore[attr-defined]


def _os_message(error: OSError) -> str:
    reason = error.strerror or str(error)
    return f"{error.filename}: {reason}" if error.filename else reason


def _stopped(stop: TrainingInterrupted) -> NoReturn:
    """Training stopped on SIGTERM/SIGINT with a checkpoint: say how to continue, exit 128 + signal."""
    if stop.checkpoint is not None:  # rank 0
        typer.echo(f"{stop}; continue with --resume", err=True)
    raise typer.Exit(128 + stop.signum)


def _fail(message: str, code: int) -> NoReturn:
    lines = message.strip().splitlines() or [""]
    typer.echo(f"error: {lines[0]}", err=True)
    for line in lines[1:]:  # config errors list one problem per line
        typer.echo(f"  {line.strip()}", err=True)
    sys.exit(code)


def main() -> None:
    """Console entry point: run the app; errors become one ``error:`` line and an exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # MONAI announces at import that an optional NVIDIA decoder is absent; it is irrelevant here.
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    try:
        # standalone_mode=False: errors reach us; typer turns Ctrl-C into an exit code it returns
        code = app(standalone_mode=False, prog_name="medxlate")
    except MedxlateError as e:
        _fail(str(e), EXIT_BAD_INPUT)
    except OSError as e:
        _fail(_os_message(e), EXIT_OS_ERROR)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as e:
        if isinstance(e, typer.Abort):  # end of input at a prompt
            _fail("aborted", EXIT_INTERRUPTED)
        if isinstance(e, _usage_error_types()):
            _fail(_usage_message(e), int(getattr(e, "exit_code", EXIT_BAD_INPUT)))
        raise
    if code == EXIT_INTERRUPTED:
        _fail("interrupted", EXIT_INTERRUPTED)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
