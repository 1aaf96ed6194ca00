"""analyse_stack: the pure geometry shared by scan_dicom and the loader."""

from __future__ import annotations

import numpy as np
import pytest

from medxlate.io.dicom_geometry import analyse_stack

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def _stack(z: list[float], *, shift: tuple[float, float] = (0.0, 0.0)) -> dict:
    """Axial frames at heights ``z`` (LPS), each moved in-plane by ``k * shift``."""
    positions = [(10.0 + k * shift[0], -20.0 + k * shift[1], v) for k, v in enumerate(z)]
    n = len(z)
    return {"positions": positions, "orientations": [AXIAL] * n, "sizes": [(16, 16)] * n, "localizer": [False] * n}


def test_regular_stack_is_ordered_along_the_normal_whatever_the_input_order() -> None:
    z = [5.0, 0.0, 10.0, 2.5, 7.5]
    geometry = analyse_stack(**_stack(z), pixel_spacing=(0.7, 0.7))
    assert geometry.order == (1, 3, 0, 4, 2)
    assert geometry.distances == (0.0, 2.5, 5.0, 7.5, 10.0)
    assert geometry.spacing == pytest.approx(2.5)
    assert geometry.flags == () and geometry.excluded == ()
    np.testing.assert_allclose(geometry.normal, [0.0, 0.0, 1.0])


def test_gap_is_named_with_slice_numbers_and_distances() -> None:
    z = [2.5 * k for k in range(12) if k != 4]  # slice at 10 mm missing
    geometry = analyse_stack(**_stack(z))
    assert geometry.flags == ("gap",)
    assert "gap between slices 4 and 5: 5 mm where 2.5 mm expected" in geometry.details["gap"]


def test_uneven_spacing_is_irregular_not_a_gap() -> None:
    geometry = analyse_stack(**_stack([0.0, 2.5, 5.4, 7.5, 10.0, 12.5]))
    assert geometry.flags == ("irregular_spacing",)
    assert "between slices 2 and 3: 2.9 mm where 2.5 mm expected" in geometry.details["irregular_spacing"]


def test_slow_drift_within_tolerance_per_gap_is_still_irregular() -> None:
    z = np.cumsum([0.0] + [2.5 + 0.1 * (k < 5) for k in range(10)]).tolist()  # 2.6 then 2.5 mm
    geometry = analyse_stack(**_stack(z))
    assert "irregular_spacing" in geometry.flags


def test_duplicates_are_grouped() -> None:
    geometry = analyse_stack(**_stack([0.0, 2.5, 2.5, 5.0, 7.5, 7.5, 7.5]))
    assert geometry.flags == ("duplicate_positions",)
    assert geometry.duplicates == ((1, 2), (4, 5, 6))
    assert geometry.spacing == pytest.approx(2.5)
    assert "slices 2 and 3 share a position" in geometry.details["duplicate_positions"]


def test_tilt_is_detected_with_its_angle() -> None:
    z = [2.0 * k for k in range(8)]
    geometry = analyse_stack(**_stack(z, shift=(0.0, 1.0)), pixel_spacing=(1.0, 1.0))  # 1 mm per 2 mm
    assert geometry.flags == ("gantry_tilt",)
    assert geometry.tilt_deg == pytest.approx(np.degrees(np.arctan(0.5)))
    assert "gantry tilt of about 26.57 degrees" in geometry.details["gantry_tilt"]


def test_in_plane_jitter_below_a_quarter_pixel_is_not_a_tilt() -> None:
    z = [2.0 * k for k in range(8)]
    stack = _stack(z)
    stack["positions"] = [(x + 0.05 * (-1) ** k, y, v) for k, (x, y, v) in enumerate(stack["positions"])]
    assert analyse_stack(**stack, pixel_spacing=(0.7, 0.7)).flags == ()


def test_localizers_and_other_orientation_or_size_are_excluded() -> None:
    stack = _stack([0.0, 2.5, 5.0, 7.5, 10.0, 0.0, 0.0])
    stack["localizer"][5] = True  # a scout in the same orientation, marked in ImageType
    stack["orientations"][6] = CORONAL  # an unmarked coronal image
    stack["sizes"][0] = (32, 32)  # a larger reformat at the first position
    geometry = analyse_stack(**stack)
    assert geometry.excluded == (0, 5, 6)
    assert geometry.order == (1, 2, 3, 4)
    assert geometry.flags == ("localizer", "mixed_orientation", "mixed_size")
    assert geometry.details["localizer"] == (
        "3 of 7 images set aside as localizers (1 marked LOCALIZER, 1 of another orientation, 1 of another size)"
    )
    assert "32x32 where the stack is 16x16" in geometry.details["mixed_size"]


def test_two_stacks_of_equal_size_are_not_guessed_between() -> None:
    stack = _stack([0.0, 2.5, 0.0, 2.5])
    stack["orientations"][2:] = [CORONAL, CORONAL]
    geometry = analyse_stack(**stack)
    assert "unsupported_layout" in geometry.flags and "mixed_orientation" in geometry.flags


def test_missing_positions_cannot_be_stacked_but_one_image_can() -> None:
    stack = _stack([0.0, 2.5, 5.0])
    stack["positions"][1] = None
    geometry = analyse_stack(**stack)
    assert geometry.flags == ("unsupported_layout",)
    assert "1 of 3 images lack ImagePositionPatient" in geometry.details["unsupported_layout"]
    single = analyse_stack([None], [None], [(8, 8)], [False])
    assert single.order == (0,) and single.flags == () and single.orientation is None


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="one position, orientation, size and localizer flag per frame"):
        analyse_stack([(0.0, 0.0, 0.0)], [AXIAL, AXIAL], [(8, 8)], [False])
