"""``format_scan_table``: a fixed-width, identifier-free text table of a :class:`ScanResult`."""

from __future__ import annotations

from collections import Counter

from medxlate.io.scan import ScanResult, SeriesInfo

__all__ = ["format_scan_table"]

_SHORT_SYNTAX = {
    "JPEG Baseline (Process 1)": "JPEG-baseline",
    "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])": "JPEG-lossless",
    "JPEG Lossless, Non-Hierarchical (Process 14)": "JPEG-lossless",
    "JPEG-LS Lossless Image Compression": "JPEG-LS",
    "JPEG-LS Lossy (Near-Lossless) Image Compression": "JPEG-LS-near",
    "JPEG 2000 Image Compression (Lossless Only)": "J2K-lossless",
    "JPEG 2000 Image Compression": "J2K",
    "RLE Lossless": "RLE",
    "Deflated Explicit VR Little Endian": "deflate",
}
_COLUMNS = (("#", 3, ">"), ("Mod", 5, "<"), ("Description", 28, "<"), ("Date", 10, "<"), ("Files", 5, ">"))
_COLUMNS += (("Slices", 6, ">"), ("Size", 9, "<"), ("Spacing x,y,z (mm)", 18, "<"), ("Flags", 0, "<"))


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _spacing(series: SeriesInfo) -> str:
    if series.pixel_spacing is None:
        return "-"
    row, col = series.pixel_spacing
    z = f"{series.slice_spacing:.3g}" if series.slice_spacing else "-"
    return f"{col:.3g} x {row:.3g} x {z}"


def _flags(series: SeriesInfo) -> str:
    shown = []
    for flag in series.flags:
        if flag == "compressed":
            names = [s.strip() for s in series.transfer_syntax.split("+")]
            flag = "compressed:" + "/".join(_SHORT_SYNTAX.get(n, n) for n in names if n in _SHORT_SYNTAX or "JPEG" in n)
        shown.append(flag)
    return ", ".join(shown) or "ok"


def _row(cells: list[str]) -> str:
    parts = []
    for (_, width, align), cell in zip(_COLUMNS, cells, strict=True):
        if width and len(cell) > width:
            cell = cell[: width - 1] + "…"
        parts.append(f"{cell:{align}{width}}" if width else cell)
    return "  ".join(parts).rstrip()


def format_scan_table(result: ScanResult) -> str:
    """Render a scan as a fixed-width table, one row per series, then a summary of unusable files.

    The table holds no patient identifier, no UID and no file path: index (for
    ``result.series[i]``), modality, description, study date, files, slices, rows x columns,
    spacing (column, row, slice; mm) and flags. Unusable files are counted by problem; their paths
    are in ``result.problems`` / ``to_json()``.

    Args:
        result: What :func:`medxlate.io.scan_dicom` returned.

    Returns:
        The table as one string (no trailing newline).
    """
    lines = [_row([name for name, _, _ in _COLUMNS])]
    for i, s in enumerate(result.series):
        size = f"{s.rows}x{s.columns}" if s.rows and s.columns else "-"
        slices = str(s.n_slices) if s.is_image else "-"
        cells = [str(i), s.modality or "?", s.description or "(none)", _date(s.study_date), str(s.n_instances)]
        lines.append(_row([*cells, slices, size, _spacing(s), _flags(s)]))
    n_files = sum(s.n_instances for s in result.series)
    lines.append(f"{len(result.series)} series, {n_files} files")
    if result.problems:
        kinds = Counter(p.problem.split(":")[0].split(" (")[0] for p in result.problems)
        summary = "; ".join(f"{count} {kind}" for kind, count in kinds.most_common())
        lines.append(f"{len(result.problems)} files not used ({summary}); paths and reasons: --json / result.problems")
    return "\n".join(lines)
