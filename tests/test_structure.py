"""Structure volumes and partial-volume masks against closed-form truths."""

import numpy as np
import pytest

from rtplan.errors import ContourError, GeometryError
from rtplan.grid import Grid
from rtplan.structure import Contour, Structure


def _circle(cx, cy, r, n=720):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[cx + r * np.cos(t), cy + r * np.sin(t)]


def _on_plane(xy, z):
    return Contour(np.c_[xy, np.full(len(xy), z)])


def sphere(radius, dz, centre=(0.0, 0.0, 0.0), n=720):
    """Contours of a sphere on planes at centre_z + (m + 1/2) dz."""
    zs = np.arange(-radius + dz / 2, radius, dz)
    cs = [
        _on_plane(_circle(centre[0], centre[1], np.sqrt(radius**2 - z**2), n), centre[2] + z)
        for z in zs
    ]
    return Structure("sphere", tuple(cs), slice_spacing_mm=dz)


def _inscribed(n):
    """Area of a regular n-gon inscribed in the unit circle, over pi."""
    return n * np.sin(2 * np.pi / n) / 2 / np.pi


@pytest.mark.parametrize("radius,dz", [(30.0, 1.0), (30.0, 2.0), (50.0, 3.0)])
def test_sphere_volume_within_0p1_percent_of_analytic(radius, dz):
    s = sphere(radius, dz)
    assert s.volume_cc == pytest.approx(4 / 3 * np.pi * radius**3 / 1000, rel=1e-3)
    # and exactly the slab-convention closed form: sum of circle areas x dz
    zs = np.arange(-radius + dz / 2, radius, dz)
    slab_truth = np.sum(np.pi * (radius**2 - zs**2)) * dz * _inscribed(720) / 1000
    assert s.volume_cc == pytest.approx(slab_truth, rel=1e-9)


def test_box_cylinder_ring_volumes():
    dz = 2.5
    zs = np.arange(5) * dz
    rect = np.array([[0, 0], [40, 0], [40, 30], [0, 30]], float)
    box = Structure("box", tuple(_on_plane(rect, z) for z in zs))
    assert box.volume_cc == pytest.approx(40 * 30 * 5 * dz / 1000, rel=1e-12)
    cyl = Structure("cyl", tuple(_on_plane(_circle(0, 0, 25, 3600), z) for z in zs))
    assert cyl.volume_cc == pytest.approx(np.pi * 625 * 5 * dz / 1000, rel=1e-3)
    ring_cs = [_on_plane(_circle(0, 0, 25, 3600), z) for z in zs] + [
        _on_plane(_circle(0, 0, 10, 3600)[::-1], z) for z in zs
    ]
    ring = Structure("ring", tuple(ring_cs))
    assert ring.volume_cc == pytest.approx(np.pi * (625 - 100) * 5 * dz / 1000, rel=1e-3)


def test_end_cap_none_removes_half_slabs():
    rect = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    s = Structure("b", tuple(_on_plane(rect, z) for z in (0.0, 2.0, 4.0)))
    assert s.volume_cc_with("slab") == pytest.approx(0.6)
    assert s.volume_cc_with("none") == pytest.approx(0.4)


GRIDS = {
    "HFS": ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    "FFS": ((0, 0, -1), (0, 1, 0), (-1, 0, 0)),
    "HFP": ((0, 0, -1), (0, -1, 0), (1, 0, 0)),
    "HFDL": ((0, -1, 0), (0, 0, 1), (1, 0, 0)),
}


@pytest.mark.parametrize("orientation", ["HFS", "FFS", "HFP", "HFDL"])
def test_fraction_mask_integrates_to_volume_on_any_orientation(orientation):
    # truth: the contour volume; a partial-volume mask on a grid that fully covers the
    # structure integrates to it exactly (in-plane coverage is exact, z overlap is exact)
    s = sphere(12.0, 2.0, centre=(3.0, -4.0, 1.0))
    d = np.array(GRIDS[orientation], float)
    g = Grid((30, 40, 37), (0, 0, 0), (1.7, 1.1, 1.3), direction=tuple(map(tuple, d)))
    centre_idx = (np.array(g.shape) - 1) / 2
    origin = np.array([3.0, -4.0, 1.0]) - g.index_to_world(centre_idx)
    g = Grid(g.shape, tuple(origin), g.spacing_mm, g.direction)
    m = s.fraction_mask(g)
    assert m.min() >= 0 and m.max() <= 1
    assert m.sum() * g.voxel_volume_cc == pytest.approx(s.volume_cc, rel=1e-5)
    # and the mask sits where the sphere is: centroid of occupancy at the centre
    idx = np.argwhere(m > 0)
    centroid = (g.index_to_world(idx) * m[m > 0][:, None]).sum(0) / m.sum()
    np.testing.assert_allclose(centroid, [3.0, -4.0, 1.0], atol=0.05)


def test_fraction_mask_is_brute_force_occupancy():
    # truth: occupancy estimated by 64^3 point samples within one boundary voxel
    s = sphere(6.0, 1.0)
    g = Grid((9, 9, 9), (-8, -8, -8), (2.0, 2.0, 2.0))
    m = s.fraction_mask(g)
    boundary = np.argwhere((m > 0.1) & (m < 0.9))
    assert len(boundary) > 20
    for k, j, i in boundary[:: len(boundary) // 5][:5]:
        _check_voxel(m, g, k, j, i)


def _check_voxel(m, g, k, j, i):
    centre = g.index_to_world([k, j, i])
    n = 64
    offs = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    zz, yy, xx = np.meshgrid(centre[2] + offs, centre[1] + offs, centre[0] + offs, indexing="ij")
    # slab convention: planes at z = m + 0.5 stand for [m, m + 1]; r(z) of the plane
    plane_z = np.floor(zz) + 0.5
    r2 = 36.0 - plane_z**2
    inside = (xx**2 + yy**2) < r2 * _inscribed(720)
    assert m[k, j, i] == pytest.approx(inside.mean(), abs=0.01)


def test_hole_and_non_coincident_dose_grid():
    ring = Structure(
        "ring",
        tuple(
            [_on_plane(_circle(0, 0, 20), z) for z in (0.0, 3.0, 6.0)]
            + [_on_plane(_circle(0, 0, 8), z) for z in (0.0, 3.0, 6.0)]
        ),
    )
    g = Grid((8, 30, 30), (-29.1, -29.1, -3.3), (2.0, 2.0, 1.7))
    m = ring.fraction_mask(g)
    assert m[:, 14:16, 14:16].max() == 0.0  # the hole is empty
    assert m.sum() * g.voxel_volume_cc == pytest.approx(ring.volume_cc, rel=1e-5)


def test_bad_contours_raise():
    with pytest.raises(ContourError, match="2 point"):
        _ = Structure("x", (Contour(np.zeros((2, 3))),)).planes
    tilted = np.c_[_circle(0, 0, 5, 10), np.linspace(0, 1, 10)]
    with pytest.raises(GeometryError, match="axial"):
        _ = Structure("x", (Contour(tilted),)).planes
    with pytest.raises(ContourError, match="single contour plane"):
        _ = Structure("x", (_on_plane(_circle(0, 0, 5), 0.0),)).volume_cc


def test_points_are_not_volumes():
    s = Structure("mark", (Contour(np.array([[1.0, 2.0, 3.0]]), "POINT"),))
    assert not s.is_volume and s.volume_cc == 0.0
