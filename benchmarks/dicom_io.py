"""DICOM I/O speed: medxlate vs SimpleITK (GDCM) vs MONAI's PydicomReader, on the same files, one run.

Data (generated with pydicom into a temporary folder, deleted afterwards):

* a tree of ~2,000 files: 4 studies x 5 CT series x 100 slices of 256x256 (``--quick``: 4 x 2 x 50),
  with realistic headers (~50 attributes, an undefined-length sequence, a 4 KiB comment);
* one CT series of 200 slices of 512x512 (``--quick``: 60 slices of 256x256), an ellipse phantom
  with noise, written uncompressed, RLE Lossless and JPEG 2000 Lossless.

Timed (median of ``--repeats`` runs after one warm-up, methods interleaved; files in the page
cache unless the case says "cold", where each file is evicted with ``posix_fadvise(DONTNEED)``):

* scan: ``medxlate.io.scan_dicom(tree)`` (default: adaptive read-ahead; and serial) vs SimpleITK's
  discovery (``ImageSeriesReader.GetGDCMSeriesIDs`` + ``GetGDCMSeriesFileNames`` in every folder);
* header reading strategies behind ``read_headers`` (adaptive read-ahead, serial, read-ahead
  always, a thread pool parsing, a fork process pool), warm and cold;
* load: ``medxlate.io.load_volume(folder)`` (float32 ``MetaTensor``) vs SimpleITK
  (``GetGDCMSeriesFileNames`` + ``ImageSeriesReader.Execute``, its series scan included) vs MONAI
  ``LoadImage(reader="PydicomReader", image_only=True)`` on the folder.

Values are checked too: max |medxlate - SimpleITK| and |medxlate - MONAI| over the volume.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.dicom_io [--quick] [--repeats 5] [--out benchmarks/results/dicom_io.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from medxlate.errors import InputDataError
from medxlate.io import load_volume, scan_dicom
from medxlate.io.dicom_header import read_header
from medxlate.io.scan import _prefetched, read_headers
from tests.dicom_factory import write_ct_series

_HEADER_EXTRA: dict[str, Any] = {
    "Manufacturer": "ACME Medical",
    "ManufacturerModelName": "Tomograph 9000",
    "StationName": "CT01",
    "SoftwareVersions": "VB20A",
    "KVP": "120",
    "XRayTubeCurrent": 250,
    "Exposure": 180,
    "ConvolutionKernel": "B30f",
    "ReconstructionDiameter": "380.0",
    "DataCollectionDiameter": "500.0",
    "PatientPosition": "HFS",
    "BodyPartExamined": "CHEST",
    "ProtocolName": "Thorax routine",
    "WindowCenter": "40",
    "WindowWidth": "400",
    "ImageComments": "benchmark " * 400,  # ~4 KiB: real headers carry private blocks of this size
    "AcquisitionDate": "20240105",
    "ContentDate": "20240105",
    "AcquisitionTime": "101010",
    "ContentTime": "101011",
}


def _phantom(size: int, n: int, seed: int) -> np.ndarray:
    """An (X, Y, Z) CT-like ellipse with noise, in HU."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.6) ** 2 < 1.0
    slab = np.where(body, 40.0, -1000.0) + np.where((x / 0.2) ** 2 + ((y + 0.3) / 0.15) ** 2 < 1, 660.0, 0.0)
    return slab[..., None] + rng.normal(0.0, 15.0, (size, size, n)).round()


def _extra() -> dict[str, Any]:
    reference = pydicom.Dataset()
    reference.ReferencedSOPClassUID = pydicom.uid.CTImageStorage
    reference.ReferencedSOPInstanceUID = "1.2.3.4.5"
    return {**_HEADER_EXTRA, "ReferencedImageSequence": [reference]}


def make_tree(root: Path, studies: int, series: int, slices: int, size: int) -> int:
    """Write studies x series x slices files under ``root``; return the number of files."""
    volume = _phantom(size, slices, 0)
    for st in range(studies):
        for se in range(series):
            folder = root / f"patient{st}" / f"study{st}" / f"series{se}"
            write_ct_series(
                folder,
                volume,
                (0.7, 0.7, 2.5),
                seed=st,
                series_number=se + 1,
                extra=_extra(),
                series_description=f"Series {se}",
                study_date=f"2024010{st + 1}",
            )
    return studies * series * slices


def make_series(folder: Path, slices: int, size: int, syntax: str | None) -> None:
    """The large series, optionally compressed."""
    paths = write_ct_series(folder, _phantom(size, slices, 1), (0.7, 0.7, 1.25), seed=9, extra=_extra())
    if syntax is None:
        return
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(syntax, encoding_plugin="pylibjpeg")
        ds.save_as(path, enforce_file_format=True)


def sitk_discover(root: Path) -> dict[str, tuple[str, ...]]:
    """SimpleITK's series discovery in every folder of a tree."""
    found = {}
    for folder, _, files in os.walk(root):
        if files:
            for series_id in sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder):
                found[series_id] = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, series_id)
    return found


def sitk_load(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def monai_loader() -> Callable[[Path], Any]:
    from monai.transforms import LoadImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = LoadImage(reader="PydicomReader", image_only=True)
    return lambda folder: loader(str(folder))


def _read_chunk(paths: list[Path]) -> list[Any]:
    return [read_header_or_problem(p) for p in paths]


def read_header_or_problem(path: Path) -> Any:
    """A header, or the problem as a string (exceptions do not cross process pools well)."""
    try:
        return read_header(path)
    except InputDataError as e:
        return str(e)


def header_strategies(files: list[Path]) -> dict[str, Callable[[], Any]]:
    """The ways of reading many headers in parallel that were measured for ``read_headers``."""

    def thread_pool() -> list[Any]:
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(read_header_or_problem, files, chunksize=32))

    def process_pool() -> list[Any]:
        chunks = [files[i : i + 100] for i in range(0, len(files), 100)]
        with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=multiprocessing.get_context("fork")) as pool:
            return [h for chunk in pool.map(_read_chunk, chunks) for h in chunk]

    def read_ahead() -> list[Any]:
        with ThreadPoolExecutor(4) as pool:
            return [read_header_or_problem(p) for p, _ in zip(files, _prefetched(pool, files), strict=True)]

    return {
        "adaptive read-ahead (default)": lambda: read_headers(files),
        "serial": lambda: read_headers(files, workers=1),
        "read-ahead threads (4) always": read_ahead,
        "thread pool (4) parsing": thread_pool,
        "process pool (fork, 1 per CPU)": process_pool,
    }


def evict(root: Path) -> None:
    """Drop the files under ``root`` from the page cache (this process's files only)."""
    for path in root.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def timed(cases: dict[str, Callable[[], Any]], repeats: int, before: Callable[[], None] | None = None) -> dict:
    """Median/min seconds per case; cases interleaved, one untimed warm-up each."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            if before is not None:
                before()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(t), "min_s": min(t)} for name, t in times.items()}


def _rows(group: str, results: dict, ours: str) -> list[dict]:
    base = results[ours]["median_s"]
    return [{"case": group, "method": name, **r, "vs_medxlate": r["median_s"] / base} for name, r in results.items()]


def run(quick: bool, repeats: int) -> dict[str, Any]:
    tree_shape = (4, 2, 50, 128) if quick else (4, 5, 100, 256)
    series_shape = (60, 256) if quick else (200, 512)
    rows: list[dict] = []
    checks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="medxlate-dicom-bench-") as tmp:
        tmp_path = Path(tmp)
        start = time.perf_counter()
        n_files = make_tree(tmp_path / "tree", *tree_shape)
        syntaxes = {
            "uncompressed": None,
            "RLE": pydicom.uid.RLELossless,
            "JPEG2000-lossless": pydicom.uid.JPEG2000Lossless,
        }
        for name, uid in syntaxes.items():
            make_series(tmp_path / name, *series_shape, uid)
        generation_s = time.perf_counter() - start
        tree = tmp_path / "tree"
        assert len(scan_dicom(tree).series) == tree_shape[0] * tree_shape[1]
        assert len(sitk_discover(tree)) == tree_shape[0] * tree_shape[1]
        scan_cases = {
            "medxlate scan_dicom": lambda: scan_dicom(tree),
            "medxlate scan_dicom (serial)": lambda: scan_dicom(tree, workers=1),
            "SimpleITK GDCM discovery": lambda: sitk_discover(tree),
        }
        rows += _rows(f"scan {n_files} files", timed(scan_cases, repeats), "medxlate scan_dicom")
        rows += _rows(
            f"scan {n_files} files, cold",
            timed(scan_cases, max(2, repeats // 2), lambda: evict(tree)),
            "medxlate scan_dicom",
        )
        files = sorted(p for p in tree.rglob("*") if p.is_file())
        strategies = header_strategies(files)
        default = next(iter(strategies))
        rows += _rows(f"read {n_files} headers", timed(strategies, repeats), default)
        cold_strategies = {k: v for k, v in strategies.items() if "pool" not in k}
        rows += _rows(
            f"read {n_files} headers, cold", timed(cold_strategies, max(2, repeats // 2), lambda: evict(tree)), default
        )
        monai = monai_loader()
        for name in syntaxes:
            folder = tmp_path / name
            ours = load_volume(folder)[0].numpy()
            theirs = sitk.GetArrayFromImage(sitk_load(folder)).transpose(2, 1, 0)
            checks[f"{name}: max|medxlate - SimpleITK|"] = float(np.abs(ours - theirs).max())
            checks[f"{name}: max|medxlate - MONAI|"] = float(np.abs(ours - np.asarray(monai(folder))[..., ::1]).max())
            cases = {
                "medxlate load_volume": lambda f=folder: load_volume(f),
                "SimpleITK series reader": lambda f=folder: sitk_load(f),
                "MONAI LoadImage(PydicomReader)": lambda f=folder: monai(f),
            }
            label = f"load {series_shape[0]}x{series_shape[1]}x{series_shape[1]} {name}"
            rows += _rows(label, timed(cases, repeats), "medxlate load_volume")
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "pydicom": pydicom.__version__,
            "SimpleITK": sitk.Version.VersionString(),
        },
        "quick": quick,
        "repeats": repeats,
        "generation_s": generation_s,
        "checks": checks,
        "rows": rows,
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"{'case':<36} {'method':<46} {'median s':>9} {'min s':>8} {'x medxlate':>10}")
    for row in report["rows"]:
        print(
            f"{row['case']:<36} {row['method']:<46} {row['median_s']:>9.3f} {row['min_s']:>8.3f} "
            f"{row['vs_medxlate']:>10.2f}"
        )
    for name, value in report["checks"].items():
        print(f"check {name}: {value:g}")
    machine = report["machine"]
    print(f"data generated in {report['generation_s']:.0f} s (not timed)")
    print(f"{machine['cpus']} CPUs, load average at end {machine['load_average_at_end']}, Python {machine['python']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller tree and series")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dicom_io.json"))
    args = parser.parse_args()
    report = run(args.quick, args.repeats)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
