"""scan_dicom on a messy export: series found and flagged, bad files reported, identifiers kept private."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medxlate.io import format_scan_table, load_series, load_volume, scan_dicom
from medxlate.io.dicom_header import _fast, _finish, read_header
from medxlate.io.dicom_pydicom import read_with_pydicom
from medxlate.io.scan import ScanResult, SeriesInfo
from tests.dicom_factory import write_ct_series, write_enhanced_series
from tests.io.dicom_objects import make_mosaic, recompress, write_rtstruct, write_sr

SECRETS = ("FAKE-0001", "Test^Synthetic", "1.2.826.0.1.3680043", "Hospital of Nowhere", "ACC-777", "19700101")
VOLUME = np.random.default_rng(0).uniform(-1000.0, 1000.0, (16, 16, 8))


def _export(root: Path) -> dict[str, Path]:
    """A messy hospital export: 2 studies, nested folders, localizers, non-images, broken files."""
    who = {"AccessionNumber": "ACC-777", "InstitutionName": "Hospital of Nowhere", "PatientBirthDate": "19700101"}
    ct = root / "PAT" / "STUDY1" / "CT"
    write_ct_series(ct, VOLUME, (0.7, 0.7, 2.5), series_description="Thorax", seed=1, study_date="20240105", extra=who)
    write_ct_series(  # a scout inside the thorax series (same series UID), marked LOCALIZER, another orientation
        ct,
        VOLUME[:, :, :1],
        (0.7, 0.7, 2.5),
        row_dir=(1, 0, 0),
        col_dir=(0, 0, -1),
        seed=1,
        series_description="Thorax",
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        instance_offset=100,
        study_date="20240105",
    )
    scout = root / "PAT" / "STUDY1" / "SCOUT"
    write_ct_series(
        scout,
        VOLUME[:, :, :2],
        (0.7, 0.7, 2.5),
        series_description="Topogram",
        seed=1,
        series_number=2,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        study_date="20240105",
    )
    mr = root / "PAT" / "STUDY2" / "deep" / "er" / "MR"
    write_ct_series(
        mr,
        VOLUME + 1000.0,
        (0.9, 0.9, 3.0),
        modality="MR",
        series_description="T1 axial",
        seed=2,
        intercept=0.0,
        signed=False,
        study_date="20240210",
        photometric="MONOCHROME1",
    )
    gap = root / "PAT" / "STUDY2" / "GAP"
    paths = write_ct_series(gap, VOLUME, (0.7, 0.7, 2.5), series_description="Gapped", seed=3, shuffle=False)
    paths[4].unlink()
    write_enhanced_series(
        root / "PAT" / "STUDY2" / "enhanced.dcm", VOLUME, (0.7, 0.7, 2.5), seed=4, series_description="Enhanced CT"
    )
    rle = root / "PAT" / "STUDY2" / "RLE"
    recompress(write_ct_series(rle, VOLUME, series_description="RLE copy", seed=5), "rle")
    write_sr(root / "PAT" / "STUDY1" / "report.dcm", seed=1)
    write_rtstruct(root / "PAT" / "STUDY1" / "rtstruct.dcm", seed=1)
    bad = root / "PAT" / "BAD"
    bad_paths = write_ct_series(bad, VOLUME[:, :, :4], series_description="Bad files", seed=6, shuffle=False)
    cut_header, cut_pixels, no_pixels, bad_vr = bad_paths
    cut_header.write_bytes(cut_header.read_bytes()[:600])
    cut_pixels.write_bytes(cut_pixels.read_bytes()[:-100])
    ds = pydicom.dcmread(no_pixels)
    del ds.PixelData
    ds.save_as(no_pixels, enforce_file_format=True)
    ds = pydicom.dcmread(bad_vr)
    ds.add_new(0x00200032, "LO", "n/a")  # wrong VR and no numbers
    ds.save_as(bad_vr, enforce_file_format=True)
    (root / "PAT" / "notes.txt").write_text("burned CD, 2024")
    (root / "PAT" / ".hidden.dcm").write_bytes(b"\0" * 10)
    (root / "DICOMDIR").write_bytes(b"\0" * 200)
    return {"cut_header": cut_header, "cut_pixels": cut_pixels, "no_pixels": no_pixels, "bad_vr": bad_vr}


@pytest.fixture
def export(tmp_path: Path) -> tuple[ScanResult, dict[str, Path]]:
    bad = _export(tmp_path)
    return scan_dicom(tmp_path, workers=4), bad


def _by_description(result: ScanResult) -> dict[str, SeriesInfo]:
    return {s.description: s for s in result.series}


def test_every_series_is_found_with_its_facts_and_flags(export: tuple[ScanResult, dict[str, Path]]) -> None:
    result, _ = export
    series = _by_description(result)
    assert set(series) == {
        "Thorax",
        "Topogram",
        "T1 axial",
        "Gapped",
        "Enhanced CT",
        "RLE copy",
        "SR object",
        "RTSTRUCT object",
    }
    thorax = series["Thorax"]
    assert (thorax.modality, thorax.n_instances, thorax.n_slices, thorax.rows, thorax.columns) == ("CT", 9, 8, 16, 16)
    assert thorax.pixel_spacing == (0.7, 0.7) and thorax.slice_spacing == pytest.approx(2.5)
    assert thorax.study_date == "20240105" and thorax.transfer_syntax == "Explicit VR Little Endian"
    assert thorax.flags == ("localizer", "mixed_orientation")
    assert (
        thorax.details["localizer"]
        == "1 of 9 images set aside as localizers (1 marked LOCALIZER, 1 of another orientation)"
    )
    positions = [float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in thorax.files[:8]]
    assert positions == sorted(positions)  # files ordered along the normal, the scout last
    assert "LOCALIZER" in pydicom.dcmread(thorax.files[8]).ImageType
    assert series["Topogram"].flags == ("localizer",) and series["Topogram"].n_slices == 2
    assert series["T1 axial"].flags == ("monochrome1",)
    assert series["Gapped"].flags == ("gap",)
    assert "gap between slices 4 and 5: 5 mm where 2.5 mm expected" in series["Gapped"].details["gap"]
    assert series["Enhanced CT"].flags == ("multiframe",) and series["Enhanced CT"].n_slices == 8
    assert series["RLE copy"].flags == ("compressed",) and series["RLE copy"].transfer_syntax == "RLE Lossless"
    for name in ("SR object", "RTSTRUCT object"):
        assert series[name].flags == ("non_image",) and not series[name].is_image and series[name].rows is None
    assert "Basic Text SR Storage" in series["SR object"].details["non_image"]
    assert [s.study_date for s in result.series] == sorted(s.study_date for s in result.series)


def test_bad_files_are_reported_one_by_one_and_the_scan_goes_on(export: tuple[ScanResult, dict[str, Path]]) -> None:
    result, bad = export
    problems = {p.path.name: p.problem for p in result.problems}
    assert set(problems) == {"notes.txt", *(p.name for p in bad.values())}
    assert problems["notes.txt"].startswith("not a DICOM Part-10 file")
    assert problems[bad["cut_header"].name].startswith("truncated: the file ends inside the header")
    assert problems[bad["cut_pixels"].name] == "truncated: pixel data needs 512 bytes, the file holds 412"
    assert problems[bad["no_pixels"].name] == "CT Image Storage without pixel data (truncated file?)"
    assert problems[bad["bad_vr"].name] == "ImagePositionPatient is 'n/a'; expected 3 finite number(s)"
    assert "Bad files" not in _by_description(result)  # all four were bad: no series left


def test_identifiers_stay_in_memory_only(export: tuple[ScanResult, dict[str, Path]]) -> None:
    result, _ = export
    thorax = _by_description(result)["Thorax"]
    assert thorax.identifiers["PatientID"] == "FAKE-0001"
    assert thorax.identifiers["AccessionNumber"] == "ACC-777" and thorax.identifiers["PatientBirthDate"] == "19700101"
    assert thorax.series_uid.startswith("1.2.826.0.1.3680043")
    public = [repr(result), str(thorax), json.dumps(result.to_json()), format_scan_table(result)]
    public += [p.problem for p in result.problems] + [d for s in result.series for d in s.details.values()]
    for text in public:
        for secret in SECRETS:
            assert secret not in text
    private = json.dumps(result.to_json(include_identifiers=True))
    assert "FAKE-0001" in private and thorax.series_uid in private


def test_json_is_relative_and_indexed(export: tuple[ScanResult, dict[str, Path]]) -> None:
    result, _ = export
    data = result.to_json(include_identifiers=True)
    assert [s["index"] for s in data["series"]] == list(range(len(result.series)))
    thorax = next(s for s in data["series"] if s["description"] == "Thorax")
    assert thorax["files"][0].startswith("PAT/STUDY1/CT/") and thorax["flags"] == ["localizer", "mixed_orientation"]
    assert {p["path"] for p in data["problems"]} >= {"PAT/notes.txt", "PAT/BAD/slice_0000.dcm"}
    # by default the paths below the root (folders of an export often name patients) are redacted
    public = result.to_json()
    files = [f for s in public["series"] for f in s["files"]] + [p["path"] for p in public["problems"]]
    assert set(files) == {"<redacted>"}
    assert len(files) == sum(len(s["files"]) for s in data["series"]) + len(data["problems"])
    assert "PAT" not in json.dumps({**public, "root": ""}) and public["root"] == str(result.root)


def test_table_is_readable(export: tuple[ScanResult, dict[str, Path]]) -> None:
    result, _ = export
    table = format_scan_table(result)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["#", "Mod", "Description", "Date"]
    thorax = next(line for line in lines if "Thorax" in line)
    assert "2024-01-05" in thorax and "16x16" in thorax and "0.7 x 0.7 x 2.5" in thorax
    assert thorax.rstrip().endswith("localizer, mixed_orientation")
    assert "compressed:RLE" in next(line for line in lines if "RLE copy" in line)
    assert lines[-1].startswith("5 files not used (") and "1 not a DICOM Part-10 file" in lines[-1]
    # fixed width: in every series row the fixed columns end where the header's do, so each left-aligned
    # column starts at the header's offset and the flags (variable) start at the header's "Flags"
    rows = lines[1:-2]
    assert len(rows) == len(result.series)
    starts = {name: lines[0].index(name) for name in ("Mod", "Description", "Date", "Size", "Spacing", "Flags")}
    for row in rows:
        assert all(row[start - 2 : start] == "  " for start in starts.values()), row
        assert row[starts["Flags"]] != " " and len(row) > starts["Flags"], row
    thorax = next(row for row in rows if "Thorax" in row)
    expected = {"Mod": "CT ", "Description": "Thorax", "Date": "2024-01-05", "Size": "16x16"}
    expected |= {"Spacing": "0.7 x 0.7 x 2.5", "Flags": "localizer, mixed_orientation"}
    assert {name: thorax[starts[name] :].startswith(value) for name, value in expected.items()} == dict.fromkeys(
        expected, True
    )


def test_scanned_series_loads_without_a_rescan(export: tuple[ScanResult, dict[str, Path]]) -> None:
    result, _ = export
    series = _by_description(result)
    with pytest.warns(UserWarning, match=r"'Thorax' \(CT, 9 files\) in .*: 1 of 9 images set aside as localizers"):
        thorax = load_series(series["Thorax"])
    assert thorax.shape == (1, 16, 16, 8)
    enhanced = load_series(series["Enhanced CT"])
    np.testing.assert_allclose(enhanced[0].numpy(), np.rint(VOLUME + 1024.0) - 1024.0)
    by_uid = load_volume(result.root, series_uid=series["RLE copy"].series_uid)
    np.testing.assert_array_equal(by_uid.numpy(), load_series(series["RLE copy"]).numpy())


def test_fast_header_reader_agrees_with_pydicom(tmp_path: Path) -> None:
    _export(tmp_path)
    (tmp_path / "PAT" / "BAD").rename(tmp_path / "bad")  # broken files: pydicom's path judges those
    implicit = write_ct_series(
        tmp_path / "implicit",
        VOLUME[:, :, :2],
        seed=9,
        series_description="Déjà vu",
        extra={"SpecificCharacterSet": "ISO_IR 100"},
    )
    for path in implicit:
        ds = pydicom.dcmread(path)
        ds.ReferencedImageSequence = [pydicom.Dataset()]  # an undefined-length sequence to skip
        ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
        ds.add_new(0x00280010, "UL", 16)  # a wrong but plausible VR for Rows
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    files = [p for p in tmp_path.rglob("*.dcm") if "bad" not in p.parts and not p.name.startswith(".")]
    fast = [p for p in files if _fast(p, None) is not None]
    assert len(files) == 39 and len(fast) == 38  # only the enhanced CT needs pydicom (functional groups)
    for path in files:
        assert read_header(path) == _finish(path, *read_with_pydicom(path)), path
    header = read_header(implicit[0])
    assert (header.description, header.rows, header.transfer_syntax) == ("Déjà vu", 16, "1.2.840.10008.1.2")


def test_mosaic_is_flagged_and_refused(tmp_path: Path) -> None:
    paths = write_ct_series(
        tmp_path, VOLUME[:, :, :3] + 1000.0, modality="MR", series_description="fMRI", intercept=0.0, signed=False
    )
    for path in paths:
        make_mosaic(path, images=16)
    (series,) = scan_dicom(tmp_path).series
    assert "mosaic" in series.flags and "16 images tiled" in series.details["mosaic"]
    with pytest.raises(Exception, match=r"DICOM series 'fMRI' \(MR, 3 files\) in .*Siemens mosaic") as info:
        load_volume(tmp_path)
    assert "FAKE-0001" not in str(info.value)


def test_a_single_file_and_a_missing_root(tmp_path: Path) -> None:
    (path,) = write_ct_series(tmp_path, VOLUME[:, :, :1], series_description="One")
    result = scan_dicom(path)
    assert [s.description for s in result.series] == ["One"] and result.root == tmp_path
    with pytest.raises(Exception, match="does not exist"):
        scan_dicom(tmp_path / "nope")
