"""Masks -> planar contours: exact pixel-edge outlines, area-matched iso-lines, geometry."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path

from rtplan.contouring import (
    SADDLE_INSET,
    decimate,
    edges_meet,
    mask_contours,
    remove_collinear,
    slice_polygons,
    structure_from_mask,
)
from rtplan.errors import ContourError, GeometryError
from rtplan.grid import Grid
from rtplan.polygon import signed_area
from rtplan.testing.synthetic import cardinal_grid


def _even_odd_raster(polygons, shape):
    """Pixel centres inside an odd number of polygons (matplotlib point-in-polygon)."""
    jj, ii = np.mgrid[0 : shape[0], 0 : shape[1]]
    pts = np.column_stack([ii.ravel(), jj.ravel()]).astype(float)
    count = np.zeros(len(pts), int)
    for p in polygons:
        count += Path(p).contains_points(pts)
    return (count % 2 == 1).reshape(shape)


def _saddle_cells(mask):
    """2x2 pixel blocks whose set pixels touch only diagonally."""
    m = np.pad(mask, 1)
    a, b, c, d = m[:-1, :-1], m[:-1, 1:], m[1:, :-1], m[1:, 1:]
    return int(np.sum((a == d) & (b == c) & (a != b)))


def _disc_fractions(radius, centre, shape, supersample=16):
    """Occupancy of each pixel by a disc, by supersampling (truth for the iso-line tests)."""
    o = (np.arange(supersample) + 0.5) / supersample - 0.5
    jj, ii = np.mgrid[0 : shape[0], 0 : shape[1]]
    x = ii[..., None, None] + o[None, None, :, None]
    y = jj[..., None, None] + o[None, None, None, :]
    return ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2).mean(axis=(2, 3))


def test_rectangle_outline_on_pixel_edges():
    # Pixels (rows 1-2, columns 1-3) span i in [0.5, 3.5], j in [0.5, 2.5]: hand-drawn.
    m = np.zeros((4, 5), bool)
    m[1:3, 1:4] = True
    (poly,) = slice_polygons(m)
    assert sorted(map(tuple, poly.tolist())) == [(0.5, 0.5), (0.5, 2.5), (3.5, 0.5), (3.5, 2.5)]
    assert signed_area(poly) == 6.0


def test_random_binary_masks_round_trip_exactly():
    # Truth: the mask itself.  Rasterising the outlines at pixel centres (even-odd) gives the
    # mask back, and the net area is the pixel count less the saddle insets: each saddle
    # cell is passed twice and each passage cuts SADDLE_INSET / (2 sqrt 2) pixel of area.
    rng = np.random.default_rng(7)
    for _ in range(40):
        m = rng.random((18, 21)) < rng.uniform(0.2, 0.8)
        polys = slice_polygons(m)
        assert np.array_equal(_even_odd_raster(polys, m.shape), m)
        expected = m.sum() - 2 * _saddle_cells(m) * SADDLE_INSET / (2 * np.sqrt(2))
        assert sum(signed_area(p) for p in polys) == pytest.approx(expected, abs=1e-9)
        assert not edges_meet(*polys)
        assert all(len(p) >= 3 for p in polys)


def test_ring_gives_outline_and_hole():
    # Annulus of pixels: one counter-clockwise outline and one clockwise hole.
    jj, ii = np.mgrid[0:30, 0:30]
    r = np.hypot(ii - 14.5, jj - 14.5)
    m = (r <= 12) & (r >= 6)
    polys = slice_polygons(m)
    areas = sorted(signed_area(p) for p in polys)
    assert len(polys) == 2 and areas[0] < 0 < areas[1]
    assert sum(areas) == pytest.approx(m.sum())


def test_islands_and_diagonal_neighbours_are_separate_contours():
    m = np.zeros((8, 12), bool)
    m[1:3, 1:3] = True  # island 1
    m[5:7, 8:11] = True  # island 2
    m[3, 3] = True  # touches island 1 only at a corner: its own contour (4-connectivity)
    polys = slice_polygons(m)
    assert len(polys) == 3
    assert not edges_meet(*polys)
    cut = SADDLE_INSET / (2 * np.sqrt(2))  # one saddle passage per touching pixel
    assert sorted(signed_area(p) for p in polys) == pytest.approx([1 - cut, 4 - cut, 6.0])


def test_isoline_area_equals_sum_of_fractions_and_follows_the_disc():
    # Truth: a disc of radius R; fractions from 16x16 supersampling.  The contour's area
    # equals the sum of the fractions, and it overlaps the analytic disc with Dice >= 0.99.
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:40:0.05, 0:40:0.05]
    pts = np.column_stack([xs.ravel(), ys.ravel()])
    for radius in (4.0, 7.5, 12.0):
        centre = 19.5 + rng.random(2)
        f = _disc_fractions(radius, centre, (40, 40))
        polys = slice_polygons(f)
        assert sum(signed_area(p) for p in polys) == pytest.approx(f.sum(), rel=1e-6)
        inside = np.zeros(len(pts), int)
        for p in polys:
            inside += Path(p).contains_points(pts)
        a = inside % 2 == 1
        b = np.hypot(pts[:, 0] - centre[0], pts[:, 1] - centre[1]) <= radius
        assert 2 * np.sum(a & b) / (a.sum() + b.sum()) >= 0.99


def test_auto_method_and_bad_values():
    with pytest.raises(GeometryError):
        slice_polygons(np.full((3, 3), 1.5))
    with pytest.raises(GeometryError):
        slice_polygons(np.zeros((3, 3)), method="spline")
    assert slice_polygons(np.zeros((3, 3), bool)) == []


def test_mask_contours_lie_on_slice_planes_in_lps():
    # Feet-first grid with non-uniform slices: slice k at z = 100 - offset_k, x = -i*2 ...
    grid = cardinal_grid((3, 6, 6), (10.0, -20.0, 100.0), (2.0, 2.0, 2.0), "FFS", (0, 2, 5))
    m = np.zeros(grid.shape, bool)
    m[2, 1:3, 2:4] = True
    (c,) = mask_contours(m, grid)
    assert np.all(c[:, 2] == 95.0)
    # pixel edges: i in [1.5, 3.5] -> x = 10 - 2*i in [3, 7]; j in [0.5, 2.5] -> y in [-19, -15]
    assert sorted(set(c[:, 0].tolist())) == [3.0, 7.0]
    assert sorted(set(c[:, 1].tolist())) == [-19.0, -15.0]


def test_mask_contours_reject_mismatched_or_non_axial_grids():
    grid = Grid((2, 3, 3), (0, 0, 0), (1, 1, 1))
    with pytest.raises(GeometryError):
        mask_contours(np.zeros((2, 3, 4), bool), grid)
    sagittal = Grid((2, 3, 3), (0, 0, 0), (1, 1, 1), ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    with pytest.raises(GeometryError):
        mask_contours(np.zeros((2, 3, 3), bool), sagittal)


def test_structure_from_mask_volume_is_voxel_count():
    grid = Grid((5, 10, 10), (0.0, 0.0, 0.0), (3.0, 1.5, 1.5))
    m = np.zeros(grid.shape, bool)
    m[1:4, 2:7, 3:9] = True
    s = structure_from_mask(m, grid, "Box", interpreted_type="ORGAN", number=4)
    assert s.volume_cc == pytest.approx(m.sum() * grid.voxel_volume_cc, rel=1e-12)
    assert s.number == 4 and s.slice_spacing_mm == 3.0
    with pytest.raises(ContourError):
        structure_from_mask(np.zeros(grid.shape, bool), grid, "Empty")


def test_remove_collinear_keeps_corners_and_reversals():
    p = np.array([[0, 0], [1, 0], [2, 0], [2, 1], [2, 2], [0, 2]], dtype=float)
    assert remove_collinear(p).tolist() == [[0, 0], [2, 0], [2, 2], [0, 2]]


def test_decimate_circle_keeps_area():
    # A 4000-gon of radius 100 decimated to 500 points: area of a regular n-gon is
    # (n/2) r^2 sin(2 pi / n); the kept polygon stays within 0.1% of the original.
    t = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    circle = 100 * np.column_stack([np.cos(t), np.sin(t)])
    d = decimate(circle, 500)
    assert len(d) <= 500
    assert signed_area(d) == pytest.approx(signed_area(circle), rel=1e-3)
    assert not edges_meet(d)
    with pytest.raises(ContourError):
        decimate(circle, 2)


def test_edges_meet_detects_crossing_touching_and_spikes():
    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]], dtype=float)
    assert not edges_meet(square)
    assert edges_meet(np.array([[0, 0], [2, 0], [0, 2], [2, 2]], dtype=float))  # bow tie
    assert edges_meet(square, square + [2, 0])  # shared edge
    assert edges_meet(square, square + [2, 2])  # shared corner
    assert not edges_meet(square, square + [2.5, 0])
    assert edges_meet(np.array([[0, 0], [3, 0], [2, 0], [0, 2]], dtype=float))  # doubles back
    assert not edges_meet(np.array([[0, 0], [3, 0], [2, 0.001], [0, 2]], dtype=float))
