"""Image I/O: load NIfTI/NRRD/MetaImage/DICOM as RAS ``MetaTensor``; scan DICOM trees; save NIfTI.

Map:
    load.py            ``load_volume`` (dispatch by path type; NIfTI via MONAI ``LoadImage``), ``load_series``
    scan.py            ``scan_dicom``: walk a tree, read headers in parallel, group series, flag problems
    scan_table.py      ``format_scan_table``: identifier-free text table of a scan
    dicom.py           series reading: exclusions, regularity checks, pixels, resampling, RAS affine
    dicom_header.py    header facts of one file (``InstanceHeader``), fast walker or pydicom
    dicom_fastread.py  minimal top-level element walker (the fast path of header reads)
    dicom_pydicom.py   header reading with pydicom (fallback, functional groups, bad files)
    dicom_values.py    the attribute table and raw value decoding shared by both readers
    dicom_series.py    flags of one series from its headers (shared by scanner and loader)
    dicom_geometry.py  pure stack geometry: order, exclusions, spacing, gaps, duplicates, tilt
    dicom_pixels.py    frames in physical units: native numpy path or pydicom decoders, MONOCHROME1
    dicom_resample.py  pure numpy resampling onto a uniform orthogonal grid
    sitk_formats.py    NRRD/MetaImage via SimpleITK, LPS -> RAS
    save.py            ``save_volume`` (NIfTI, sform/qform, descrip), ``write_provenance``
    dicom_export.py    ``save_dicom_series``: a synthetic series (CT/MR Image Storage) in the source's study
    dicom_attributes.py  the exported series' copied, Type 2 and conditional attributes, display window
    atomic.py          temporary file + ``os.replace``
    guard.py           the output guard: no writer may replace or write into one of its inputs
    names.py           names and paths read from files: identifier check, stays inside its folder
    lock.py            exclusive folder locks (flock) with the holder named; no stale locks
"""

from __future__ import annotations

from medxlate.io.load import load_series, load_volume
from medxlate.io.save import save_volume, write_provenance
from medxlate.io.scan import FileProblem, ScanResult, SeriesInfo, scan_dicom
from medxlate.io.scan_table import format_scan_table

__all__ = [
    "FileProblem",
    "ScanResult",
    "SeriesInfo",
    "format_scan_table",
    "load_series",
    "load_volume",
    "save_volume",
    "scan_dicom",
    "write_provenance",
]
