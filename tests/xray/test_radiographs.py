"""Real radiographs in: DICOM CR/DX and PNG/TIFF reading, spacing rules, mapping to the DRR domain."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medxlate.errors import InputDataError
from medxlate.xray import Geometry
from medxlate.xray.radiographs import load_radiograph, to_detector_domain
from tests.xray.radiograph_factory import png_header, write_cr


def ramp(rows: int = 40, cols: int = 30, high: int = 4000) -> np.ndarray:
    """Values rise to the right and downwards, so any flip or transpose shows."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (r * 50 + c * 100).clip(0, high).astype(np.uint16)


def test_cr_monochrome1_16bit_with_imager_spacing_only(tmp_path) -> None:
    stored = ramp()
    path = write_cr(
        tmp_path / "cr.dcm",
        stored,
        bits=16,
        ImagerPixelSpacing=[0.2, 0.25],
        EstimatedRadiographicMagnificationFactor=1.25,
        ViewPosition="PA",
        PresentationLUTShape="INVERSE",
    )
    image = load_radiograph(path)
    # MONOCHROME1 (with its paired INVERSE Presentation LUT) is inverted exactly once
    torch.testing.assert_close(image.pixels, torch.from_numpy(65535.0 - stored.astype(np.float32)))
    assert image.detector_pixel_mm == (0.2, 0.25)
    assert image.view == "PA"
    assert image.record["spacing_source"] == "ImagerPixelSpacing"
    assert image.record["magnification_factor"] == 1.25
    np.testing.assert_allclose(image.record["patient_pixel_mm"], [0.16, 0.2])
    assert image.record["inverted"] is True


@pytest.mark.parametrize(
    ("photometric", "lut", "inverted"), [("MONOCHROME2", None, False), ("MONOCHROME2", "INVERSE", True)]
)
def test_presentation_lut_shape(tmp_path, photometric, lut, inverted) -> None:
    stored = ramp(high=255).astype(np.uint8)
    path = write_cr(
        tmp_path / "x.dcm", stored, bits=8, photometric=photometric, PixelSpacing=[0.5, 0.5], PresentationLUTShape=lut
    )
    image = load_radiograph(path)
    expected = 255.0 - stored if inverted else stored.astype(np.float64)
    torch.testing.assert_close(image.pixels, torch.from_numpy(expected.astype(np.float32)))
    assert image.record["bits_stored"] == 8


def test_pixel_spacing_scaled_by_magnification_to_the_detector(tmp_path) -> None:
    path = write_cr(
        tmp_path / "x.dcm",
        ramp(),
        photometric="MONOCHROME2",
        PixelSpacing=[0.16, 0.16],
        ImagerPixelSpacing=[0.2, 0.2],
        EstimatedRadiographicMagnificationFactor=1.25,
    )
    image = load_radiograph(path)
    assert image.record["spacing_source"] == "PixelSpacing"
    torch.testing.assert_close(torch.tensor(image.detector_pixel_mm), torch.tensor([0.2, 0.2]), rtol=1e-12, atol=0.0)


def test_zero_pixel_spacing_falls_back_and_none_at_all_warns(tmp_path, caplog) -> None:
    image = load_radiograph(write_cr(tmp_path / "a.dcm", ramp(), PixelSpacing=[0, 0], ImagerPixelSpacing=[0.3, 0.3]))
    assert image.detector_pixel_mm == (0.3, 0.3)
    with caplog.at_level(logging.WARNING):
        image = load_radiograph(write_cr(tmp_path / "b.dcm", ramp(), PixelSpacing=[0, 0]))
    assert image.detector_pixel_mm is None
    assert "no usable PixelSpacing or ImagerPixelSpacing" in caplog.text
    g = Geometry(sdd_mm=1000.0, sad_mm=700.0, detector_shape=(8, 8), pixel_mm=1.0)
    with pytest.raises(InputDataError, match="no usable pixel spacing"):
        to_detector_domain(image, g)
    pixels, record = to_detector_domain(image, g, pixel_mm=0.5)  # the documented fallback
    assert record["pixel_mm_used"] == [0.5, 0.5] and pixels.shape == (8, 8)


def test_rgb_and_multiframe_are_rejected(tmp_path) -> None:
    rgb = np.stack([ramp(high=255), np.zeros((40, 30)), np.zeros((40, 30))], axis=-1).astype(np.uint8)
    with pytest.raises(InputDataError, match="PhotometricInterpretation RGB"):
        load_radiograph(write_cr(tmp_path / "rgb.dcm", rgb, bits=8, photometric="RGB"))
    path = write_cr(tmp_path / "mf.dcm", np.concatenate([ramp(), ramp()]), NumberOfFrames=2, Rows=40)
    with pytest.raises(InputDataError, match="NumberOfFrames = 2"):
        load_radiograph(path)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(InputDataError, match="colour image"):
        load_radiograph(tmp_path / "rgb.png")
    frames = [Image.fromarray(ramp(high=255).astype(np.uint8)) for _ in range(2)]
    frames[0].save(tmp_path / "mf.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(InputDataError, match="2 frames"):
        load_radiograph(tmp_path / "mf.tif")
    with pytest.raises(InputDataError, match="no such file"):
        load_radiograph(tmp_path / "missing.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    with pytest.raises(InputDataError, match="not a readable DICOM"):
        load_radiograph(tmp_path / "junk.dcm")


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_png_and_tiff_16bit_greyscale(tmp_path, suffix) -> None:
    stored = ramp()
    Image.fromarray(stored).save(tmp_path / f"x.{suffix}")
    image = load_radiograph(tmp_path / f"x.{suffix}")
    torch.testing.assert_close(image.pixels, torch.from_numpy(stored.astype(np.float32)))
    assert image.detector_pixel_mm is None and image.view is None


def test_mapping_resamples_centred_and_keeps_orientation(tmp_path) -> None:
    """A 40 x 30 image at 0.5 mm onto a 10 x 10 detector at 1 mm: 2x2 box averages, centred, padded."""
    stored = ramp(high=10**6)
    path = write_cr(tmp_path / "x.dcm", stored, photometric="MONOCHROME2", ImagerPixelSpacing=[0.5, 0.5])
    g = Geometry(sdd_mm=1000.0, sad_mm=700.0, detector_shape=(10, 19), pixel_mm=1.0, view="PA")
    pixels, record = to_detector_domain(load_radiograph(path), g)
    # the 10 x 19 mm field over a 20 x 15 mm image: rows cropped by 10 source pixels a side, columns padded by 4
    assert record["crop_source_pixels_per_side"] == [10.0, 0.0] and record["pad_source_pixels_per_side"] == [0.0, 4.0]
    # the interior of the field is the 2x2 mean of the ramp, windowed: linear in row and column
    expected = torch.from_numpy(stored.astype(np.float32)).reshape(20, 2, 15, 2).mean(dim=(1, 3))[5:15]
    lo, hi = record["intensity"]["low_value"], record["intensity"]["high_value"]
    inner = pixels[:, 2:17] * (hi - lo) + lo
    torch.testing.assert_close(inner[1:-1, 1:-1], expected[1:-1, 1:-1].clamp(lo, hi), rtol=1e-4, atol=1.0)
    assert float(pixels[:, 0].max()) == 0.0  # padding is the image minimum: dark, like air


def test_a_scrambled_grey_palette_is_read_as_displayed(tmp_path: Path) -> None:
    shown = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every grey level once
    order = np.random.default_rng(0).permutation(256)  # index i is shown as grey order[i]
    inverse = np.argsort(order)
    image = Image.frombytes("P", (16, 16), inverse[shown].astype(np.uint8).tobytes())
    image.putpalette(np.repeat(order, 3).astype(np.uint8).tobytes())
    image.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    torch.testing.assert_close(load_radiograph(tmp_path / "p.png").pixels, torch.from_numpy(shown.astype(np.float32)))
    colours = np.stack([order, order[::-1], order], axis=1).astype(np.uint8)  # a palette with colour entries
    image.putpalette(colours.tobytes())
    image.save(tmp_path / "c.png")
    with pytest.raises(InputDataError, match=r"palette image with colour entries \(mode P\); expected greyscale"):
        load_radiograph(tmp_path / "c.png")


def test_huge_images_are_refused_from_the_header(tmp_path: Path) -> None:
    bomb = png_header(tmp_path / "bomb.png", 13500, 13500)  # above PIL's decompression-bomb limit
    with pytest.raises(InputDataError, match=r"bomb.png: too many pixels \(Image size \(182250000 pixels\)"):
        load_radiograph(bomb)
    big = png_header(tmp_path / "big.png", 9000, 9000)  # under PIL's limits, over ours
    with pytest.raises(InputDataError, match=r"big.png: 9000 x 9000 pixels; expected at most 67,108,864"):
        load_radiograph(big)
    claimed = write_cr(tmp_path / "big.dcm", np.zeros((8, 8), np.uint16), Rows=9000, Columns=9000)
    with pytest.raises(InputDataError, match=r"big.dcm: 9000 x 9000 pixels; expected at most 67,108,864"):
        load_radiograph(claimed)


def test_malformed_decimal_tags_are_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    needed = write_cr(
        tmp_path / "a.dcm", ramp(), PixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=b"abc "
    )
    with pytest.raises(InputDataError, match=r"a.dcm: EstimatedRadiographicMagnificationFactor 'abc'; expected one"):
        load_radiograph(needed)
    negative = write_cr(
        tmp_path / "n.dcm", ramp(), PixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=-1
    )
    with pytest.raises(InputDataError, match=r"EstimatedRadiographicMagnificationFactor '-1.0'; expected a positive"):
        load_radiograph(negative)
    # with ImagerPixelSpacing the factor is only recorded: a malformed one is ignored with a warning
    unused = write_cr(
        tmp_path / "b.dcm", ramp(), ImagerPixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=b"1\\2 "
    )
    with caplog.at_level(logging.WARNING):
        image = load_radiograph(unused)
    assert image.detector_pixel_mm == (0.2, 0.2) and image.record["magnification_factor"] is None
    assert "b.dcm: malformed EstimatedRadiographicMagnificationFactor ignored" in caplog.text
    slope = write_cr(tmp_path / "s.dcm", ramp(), ImagerPixelSpacing=[0.2, 0.2], RescaleSlope=b"x1")
    with pytest.raises(InputDataError, match=r"s.dcm: RescaleSlope 'x1'; expected one decimal number"):
        load_radiograph(slope)
