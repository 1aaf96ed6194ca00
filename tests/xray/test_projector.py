"""The projector against analytic line integrals, its conventions against the RAS affine, gradients."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

import medxlate as mx
from medxlate import xray
from medxlate.errors import ConfigError, GeometryError
from tests.xray.phantoms import (
    cylinder_chords,
    cylinder_volume,
    ll_rays,
    pa_rays,
    sphere_chords,
    sphere_volume,
)

MU = 0.02
RADIUS = 18.0
SDD, SAD, DET, PIX = 600.0, 400.0, (24, 24), 3.0


def iso_affine() -> tuple[np.ndarray, tuple[int, int, int]]:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-31.0, -31.0, -31.0]
    return affine, (32, 32, 32)


def flipped_affine() -> tuple[np.ndarray, tuple[int, int, int]]:
    """LAS-like: x flipped, anisotropic spacing, another origin."""
    affine = np.diag([-1.5, 2.5, 2.0, 1.0])
    affine[:3, 3] = [23.25 + 10.0, -38.75 - 5.0, -31.0 + 7.0]
    return affine, (42, 26, 32)


def isocentre(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    return (affine @ np.r_[(np.asarray(shape) - 1) / 2, 1.0])[:3]


def geometry(view: str | float = "PA") -> xray.Geometry:
    return xray.Geometry(sdd_mm=SDD, sad_mm=SAD, detector_shape=DET, pixel_mm=PIX, view=view)


def check_interior(result: torch.Tensor, reference: np.ndarray, interior: np.ndarray, fraction: float) -> None:
    """Rays away from the silhouette (where voxelisation blurs the edge) within ``fraction`` of the peak."""
    torch.testing.assert_close(
        result[torch.from_numpy(interior)],
        torch.from_numpy(reference[interior]).to(result.dtype),
        rtol=0.0,
        atol=fraction * float(reference.max()),
    )


@pytest.mark.parametrize("make_affine", [iso_affine, flipped_affine], ids=["isotropic", "flipped-anisotropic"])
@pytest.mark.parametrize("offset", [(0.0, 0.0, 0.0), (8.0, -6.0, 5.0)], ids=["centred", "off-centre"])
@pytest.mark.parametrize("view", ["PA", "LL"])
def test_sphere_matches_chord_length_times_attenuation(make_affine, offset, view) -> None:
    affine, shape = make_affine()
    iso = isocentre(affine, shape)
    centre = iso + np.asarray(offset)
    volume = sphere_volume(affine, shape, centre, RADIUS, MU)
    rays = pa_rays if view == "PA" else ll_rays
    source, pixels = rays(iso, SDD, SAD, DET, PIX)
    chords, distance = sphere_chords(source, pixels, centre, RADIUS)
    result = xray.line_integrals(volume, geometry(view))
    assert result.shape == DET and result.dtype == torch.float64
    check_interior(result, MU * chords, distance < RADIUS - 4.0, 0.012)
    # the whole image, silhouette included: trilinear interpolation blurs the edge by about a voxel
    reference = torch.from_numpy(MU * chords)
    torch.testing.assert_close(result, reference, rtol=0.0, atol=0.15 * float(reference.max()))


@pytest.mark.parametrize("make_affine", [iso_affine, flipped_affine], ids=["isotropic", "flipped-anisotropic"])
def test_off_centre_cylinder_with_cone_beam_magnification(make_affine) -> None:
    affine, shape = make_affine()
    iso = isocentre(affine, shape)
    centre = iso + np.array([-9.0, 4.0, 3.0])
    volume = cylinder_volume(affine, shape, centre, 12.0, 18.0, MU)
    source, pixels = pa_rays(iso, SDD, SAD, DET, PIX)
    reference = MU * cylinder_chords(source, pixels, centre, 12.0, 18.0)
    result = xray.line_integrals(volume, geometry("PA"))
    # interior: rays well inside the curved wall and away from the caps' silhouette on the detector
    u = pixels - source
    t = (centre[1] - source[1]) / u[..., 1]
    hit = source + t[..., None] * u  # where each ray crosses the cylinder's coronal mid-plane
    interior = (np.abs(hit[..., 0] - centre[0]) < 12.0 - 5.0) & (np.abs(hit[..., 2] - centre[2]) < 18.0 - 8.0)
    check_interior(result, reference, interior, 0.015)  # a 12 mm radius is only 5-8 voxels here
    # magnification: the shadow's width on the detector is about 2 r * sdd / source-axis distance
    columns = (result[DET[0] // 2] > 0.5 * reference.max()).sum().item()
    expected = 2 * 12.0 * SDD / (SAD + (centre[1] - iso[1])) / PIX
    assert abs(columns - expected) <= 1.0


def test_axis_ray_through_uniform_block_is_exact() -> None:
    """Along an axis, the clipped trilinear interpolant integrates to exactly n voxels x spacing."""
    affine = np.diag([1.5, 2.5, 2.0, 1.0])
    volume = MetaTensor(torch.full((1, 9, 12, 7), MU, dtype=torch.float64), affine=torch.from_numpy(affine))
    g = xray.Geometry(sdd_mm=SDD, sad_mm=SAD, detector_shape=(5, 5), pixel_mm=0.1, view="PA")
    result = xray.line_integrals(volume, g, samples_per_voxel=4.0)
    torch.testing.assert_close(result[2, 2], torch.tensor(MU * 12 * 2.5, dtype=torch.float64), rtol=2e-4, atol=0.0)


def marker_volume(world_offset: tuple[float, float, float]) -> MetaTensor:
    """A flipped, anisotropic grid with one dense blob at ``world_offset`` from the isocentre."""
    affine, shape = flipped_affine()
    centre = isocentre(affine, shape) + np.asarray(world_offset)
    return sphere_volume(affine, shape, centre, 4.0, 1.0)


def peak(image: torch.Tensor) -> tuple[int, int]:
    row, col = divmod(int(image.argmax()), image.shape[1])
    return row, col


@pytest.mark.parametrize(
    ("view", "offset", "side"),
    [
        ("PA", (-15.0, 0.0, 0.0), "right"),  # patient's left (-x in RAS) on the image's right
        ("AP", (-15.0, 0.0, 0.0), "right"),  # AP displayed as radiographs are: left still on the right
        (0.0, (-15.0, 0.0, 0.0), "right"),
        (180.0, (-15.0, 0.0, 0.0), "left"),  # a numeric angle is the detector-side view
        ("LL", (0.0, 15.0, 0.0), "left"),  # left lateral: anterior on the image's left
        ("RL", (0.0, 15.0, 0.0), "right"),
    ],
)
def test_view_conventions_against_the_ras_affine(view, offset, side) -> None:
    row, col = peak(xray.line_integrals(marker_volume(offset), geometry(view)))
    centre_col = (DET[1] - 1) / 2
    assert (col > centre_col) if side == "right" else (col < centre_col)
    assert abs(row - (DET[0] - 1) / 2) <= 1  # at the isocentre's height


@pytest.mark.parametrize("view", ["PA", "AP", "LL", "RL", 37.0])
def test_superior_is_the_top_row(view) -> None:
    row, _ = peak(xray.line_integrals(marker_volume((0.0, 0.0, 15.0)), geometry(view)))
    assert row < (DET[0] - 1) / 2


def test_nifti_round_trip_in_another_orientation_gives_the_same_drr(tmp_path) -> None:
    """The same physical phantom stored RAS and LAS/anisotropic (read back by nibabel via load_volume)."""
    ras_affine, ras_shape = iso_affine()
    iso = isocentre(ras_affine, ras_shape)
    las = np.diag([-2.0, 2.0, 2.0, 1.0])
    las[:3, 3] = iso - las[:3, :3] @ ((np.asarray(ras_shape) - 1) / 2)
    centre = iso + np.array([6.0, -4.0, 3.0])
    ras = sphere_volume(ras_affine, ras_shape, centre, RADIUS, MU)
    las_volume = sphere_volume(las, ras_shape, centre, RADIUS, MU)
    path = tmp_path / "las.nii.gz"
    nib.save(nib.Nifti1Image(las_volume[0].numpy().astype(np.float32), las), path)
    loaded = mx.load_volume(path)
    np.testing.assert_allclose(nib.load(path).affine, np.asarray(loaded.affine), atol=1e-5)
    g = geometry("LL")
    torch.testing.assert_close(
        xray.line_integrals(loaded, g).double(), xray.line_integrals(ras, g), rtol=0.0, atol=1e-5
    )


def test_batched_projection_equals_single_calls() -> None:
    affine, shape = flipped_affine()
    iso = isocentre(affine, shape)
    a = sphere_volume(affine, shape, iso, RADIUS, MU)
    b = cylinder_volume(affine, shape, iso + 3.0, 10.0, 12.0, MU)
    views = [geometry("PA"), geometry("LL"), geometry(25.0)]
    batch = xray.project(torch.stack([a.as_tensor(), b.as_tensor()]), torch.from_numpy(affine), views)
    assert batch.shape == (2, 3, *DET)
    for i, vol in enumerate((a, b)):
        for j, g in enumerate(views):
            torch.testing.assert_close(batch[i, j], xray.line_integrals(vol, g), rtol=0.0, atol=1e-12)


def test_gradcheck_wrt_volume() -> None:
    torch.manual_seed(0)
    affine = torch.diag(torch.tensor([2.0, -1.5, 1.0, 1.0], dtype=torch.float64))
    data = torch.rand(1, 1, 4, 5, 3, dtype=torch.float64, requires_grad=True)
    g = xray.Geometry(sdd_mm=100.0, sad_mm=70.0, detector_shape=(3, 4), pixel_mm=2.5, view=20.0)
    assert torch.autograd.gradcheck(lambda v: xray.project(v, affine, [g]), (data,))


def test_float32_matches_float64() -> None:
    affine, shape = flipped_affine()
    volume = sphere_volume(affine, shape, isocentre(affine, shape), RADIUS, MU)
    g = geometry("PA")
    torch.testing.assert_close(
        xray.line_integrals(volume.float(), g).double(), xray.line_integrals(volume, g), rtol=0.0, atol=1e-5
    )


def test_hu_to_mu_and_radiograph_window() -> None:
    hu = torch.tensor([-2000.0, -1000.0, 0.0, 1000.0])
    torch.testing.assert_close(xray.hu_to_mu(hu), torch.tensor([0.0, 0.0, 0.0192, 0.0384]))
    line = torch.linspace(0.0, 4.0, 101).reshape(1, 101).expand(101, 101)
    image, record = xray.radiograph(line, 0.0, 100.0)
    torch.testing.assert_close(image, line / 4.0)
    assert record == {"low_percentile": 0.0, "high_percentile": 100.0, "low_value": 0.0, "high_value": 4.0}
    torch.testing.assert_close(xray.transmission(torch.tensor([0.0, 1.0])), torch.tensor([1.0, float(np.exp(-1.0))]))


def test_x2ct_gan_preset() -> None:
    g = xray.Geometry.x2ct_gan("LL")
    assert (g.sdd_mm, g.sad_mm, g.detector_shape, g.pixel_mm, g.angle_deg) == (
        949.0,
        541.0,
        (320, 320),
        (1.5625, 1.5625),
        90.0,
    )
    assert g.field_mm == (500.0, 500.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sad_mm": 700.0}, "sad_mm=700.0 must be smaller"),
        ({"sdd_mm": -1.0}, "'sdd_mm' got -1.0"),
        ({"pixel_mm": 0.0}, "'pixel_mm' got 0.0"),
        ({"detector_shape": (4,)}, "'detector_shape'"),
        ({"view": "lateral"}, "unknown view 'lateral'"),
        ({"view": "pa "}, "unknown view"),
    ],
)
def test_bad_geometry_is_rejected(kwargs, match) -> None:
    params = {"sdd_mm": 600.0, "sad_mm": 400.0, "detector_shape": (4, 4), "pixel_mm": 1.0, "view": "PA"} | kwargs
    with pytest.raises(ConfigError, match=match):
        xray.Geometry(**params)


def test_bad_volume_is_rejected() -> None:
    g = geometry()
    with pytest.raises(GeometryError, match=r"expected \(1, X, Y, Z\)"):
        xray.line_integrals(MetaTensor(torch.zeros(2, 4, 4, 4)), g)
    with pytest.raises(GeometryError, match="invertible"):
        xray.project(torch.zeros(1, 1, 4, 4, 4), torch.zeros(4, 4), [g])
    other = xray.Geometry(sdd_mm=SDD, sad_mm=SAD, detector_shape=(3, 3), pixel_mm=PIX)
    with pytest.raises(GeometryError, match="different detector shapes"):
        xray.project(torch.zeros(1, 1, 4, 4, 4), torch.eye(4), [g, other])
