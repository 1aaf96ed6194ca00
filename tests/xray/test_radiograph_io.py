"""A DRR written as a CR DICOM radiograph: the tags a reader relies on, values that round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.uid import ComputedRadiographyImageStorage

from medxlate.errors import InputDataError
from medxlate.xray import Geometry, load_radiograph, project
from medxlate.xray.attenuation import hu_to_mu
from medxlate.xray.radiograph_io import write_case_radiographs, write_radiograph_dicom
from tests.io.test_dicom_export import validation_errors


def _image() -> torch.Tensor:
    """Rises to the right and downwards (any flip or transpose shows), range [0.2, 5.9]."""
    rows, cols = torch.meshgrid(torch.arange(10.0), torch.arange(7.0), indexing="ij")
    return 0.2 + 0.5 * rows + 0.2 * cols


@pytest.mark.parametrize("bits", [12, 16])
def test_monochrome1_file_stores_inverted_values_and_reads_back(tmp_path: Path, bits: int) -> None:
    image = _image()
    path = write_radiograph_dicom(image, tmp_path / "pa.dcm", (0.5, 0.625), "pa", bits_stored=bits)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == ComputedRadiographyImageStorage and ds.Modality == "CR"
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.ViewPosition == "PA"
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, bits, bits - 1, 0)
    assert "PixelSpacing" not in ds and [float(v) for v in ds.ImagerPixelSpacing] == [0.5, 0.625]
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"] and "DRR" in ds.DerivationDescription
    stored = ds.pixel_array.astype(np.float64)
    top = 2**bits - 1
    # attenuation bright in the image = low stored values (MONOCHROME1): the brightest pixel is stored as 0
    assert stored[-1, -1] == 0 and stored[0, 0] == top
    step = (5.9 - 0.2) / top
    assert float(ds.RescaleSlope) == pytest.approx(step, rel=1e-6)
    np.testing.assert_allclose((top - stored) * step + 0.2, image.numpy(), atol=step / 2 + 1e-9)
    read = load_radiograph(path)  # medxlate's reader inverts once, applies the rescale
    torch.testing.assert_close(read.pixels, image, rtol=0, atol=step / 2 + 1e-6)
    assert read.detector_pixel_mm == (0.5, 0.625) and read.view == "PA"
    assert read.record["spacing_source"] == "ImagerPixelSpacing"


def test_monochrome2_file_stores_the_image_as_displayed(tmp_path: Path) -> None:
    image = _image()
    one = load_radiograph(write_radiograph_dicom(image, tmp_path / "m1.dcm", 0.5, monochrome1=True))
    two_path = write_radiograph_dicom(image, tmp_path / "m2.dcm", 0.5, monochrome1=False)
    ds = pydicom.dcmread(two_path)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and "ViewPosition" not in ds
    assert ds.pixel_array[-1, -1] == 2**16 - 1 and ds.pixel_array[0, 0] == 0
    torch.testing.assert_close(load_radiograph(two_path).pixels, one.pixels, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("pixels", "pixel_mm", "bits", "message"),
    [
        (torch.zeros(2, 3, 4), 0.5, 16, r"shape \(2, 3, 4\); expected \(rows, columns\)"),
        (torch.tensor([[0.0, float("nan")]]), 0.5, 16, "1 pixels are NaN/inf"),
        (torch.zeros(3, 3), 0.0, 16, "pixel_mm 0.0; expected positive mm"),
        (torch.zeros(3, 3), 0.5, 10, "bits_stored 10; expected 12 or 16"),
    ],
)
def test_bad_images_are_refused_and_nothing_is_written(
    tmp_path: Path, pixels: torch.Tensor, pixel_mm: float, bits: int, message: str
) -> None:
    with pytest.raises(InputDataError, match=message):
        write_radiograph_dicom(pixels, tmp_path / "x.dcm", pixel_mm, bits_stored=bits)
    assert list(tmp_path.iterdir()) == []


def test_case_radiographs_hold_the_line_integrals_of_each_view(tmp_path: Path) -> None:
    hu = torch.full((1, 8, 8, 8), -1000.0)
    hu[0, 5:7, 2:6, 2:6] = 1000.0  # dense block on the patient's right (x grows to the right in RAS)
    affine = torch.diag(torch.tensor([4.0, 4.0, 4.0, 1.0], dtype=torch.float64))
    views = [Geometry(1000.0, 800.0, (8, 8), 5.0, view) for view in ("PA", "LL")]
    files = write_case_radiographs(hu, affine, views, tmp_path / "rg", "case_007")
    assert [f.name for f in files] == ["case_007_PA.dcm", "case_007_LL.dcm"]
    expected = project(hu_to_mu(hu)[None], affine, views)[0]
    for file, lines in zip(files, expected, strict=True):
        ds = pydicom.dcmread(file)
        assert ds.PatientID == "case_007" and [float(v) for v in ds.ImagerPixelSpacing] == [5.0, 5.0]
        read = load_radiograph(file)
        step = float(lines.max() - lines.min()) / (2**16 - 1)
        torch.testing.assert_close(read.pixels, lines.float(), rtol=0, atol=step / 2 + 1e-6)
    # PA: the patient's right is on the image's left, so the dense block brightens the left columns
    pa = load_radiograph(files[0]).pixels
    assert float(pa[:, :4].amax()) > 0.25 and float(pa[:, 4:].abs().amax()) == 0.0


@pytest.mark.parametrize(("view", "orientation"), [("PA", ["L", "F"]), ("LL", ["P", "F"]), ("RL", ["A", "F"])])
def test_radiograph_file_passes_dciodvfy_and_states_its_orientation(
    tmp_path: Path, view: str, orientation: list[str], dciodvfy: str
) -> None:
    path = write_radiograph_dicom(_image(), tmp_path / f"{view}.dcm", pixel_mm=0.5, view=view)
    assert validation_errors(dciodvfy, [path]) == []
    ds = pydicom.dcmread(path)
    assert list(ds.PatientOrientation) == orientation and ds.ViewPosition == view
    assert "PatientBirthDate" in ds and ds.PatientBirthDate == ""  # Type 2: present, empty
