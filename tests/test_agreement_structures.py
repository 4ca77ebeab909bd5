"""Agreement of RTSTRUCT structures: common grid, rasterisation, frame-of-reference check.

Truths: rectangles whose edges fall on pixel boundaries rasterise to exact voxel
blocks, so Dice, volumes and Hausdorff distances are known by hand.
"""

import numpy as np
import pytest

from rtplan.agreement import common_grid, compare_masks, compare_structures, structure_masks
from rtplan.errors import GeometryError
from rtplan.grid import Grid
from rtplan.structure import Contour, Structure


def _prism(name, x0, x1, y0, y1, zs, frame="1.2.3", spacing=None):
    rect = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
    cs = tuple(Contour(np.c_[rect, np.full(4, z)]) for z in zs)
    return Structure(name, cs, frame_of_reference_uid=frame, slice_spacing_mm=spacing)


def test_rectangular_prisms_on_the_contour_grid():
    """20 x 10 mm rectangles on planes 2.5 mm apart, one moved 2 mm in x and 1 plane up.

    On the default grid (1 mm pixels centred on integer mm, slices on the planes) the
    rectangles cover exactly 20 x 10 pixels: Dice = 2 |A & B| / (|A| + |B|) by counting.
    """
    zs = np.arange(6) * 2.5
    a = _prism("GTV", 0.5, 20.5, -4.5, 5.5, zs)
    b = _prism("GTV", 2.5, 22.5, -4.5, 5.5, zs + 2.5)
    grid = common_grid([a, b])
    assert grid.spacing_mm == (2.5, 1.0, 1.0)
    assert np.allclose(np.mod(grid.origin_mm[:2], 1.0), 0.0)  # pixel centres on whole mm
    k_planes = grid.world_to_index(np.c_[np.zeros(7), np.zeros(7), np.arange(7) * 2.5])[:, 0]
    assert np.allclose(k_planes, np.round(k_planes))  # slices on the contour planes
    m = compare_structures(a, b)
    assert m.volume_a_cc == pytest.approx(20 * 10 * 6 * 2.5 / 1000, rel=1e-12)
    assert m.volume_b_cc == pytest.approx(m.volume_a_cc, rel=1e-12)
    overlap = 18 * 10 * 5
    assert m.dice == pytest.approx(2 * overlap / (2 * 20 * 10 * 6), rel=1e-12)
    assert m.centroid_distance_mm == pytest.approx(np.hypot(2.0, 2.5), rel=1e-12)
    # a corner of A is 2 mm and one slice from B's nearest corner: lattice distance
    assert m.hausdorff_mm == pytest.approx(np.hypot(2.0, 2.5), rel=1e-12)


def test_ct_grid_gives_a_sub_grid_with_the_ct_voxel_centres():
    ct = Grid(shape=(40, 64, 64), origin_mm=(-31.5, -31.5, -10.0), spacing_mm=(2.5, 1.0, 1.0))
    zs = np.arange(4) * 2.5
    a = _prism("CTV", -10.0, 10.0, -5.0, 5.0, zs, spacing=2.5)
    b = _prism("CTV", -8.0, 12.0, -5.0, 5.0, zs, spacing=2.5)
    grid = common_grid([a, b], ct_grid=ct)
    index = ct.world_to_index(np.array([grid.origin_mm]))[0]
    assert np.allclose(index, np.round(index))
    assert grid.spacing_mm == ct.spacing_mm
    full = structure_masks({"a": a, "b": b}, ct)
    sub = structure_masks({"a": a, "b": b}, grid)
    assert sub["a"].sum() == full["a"].sum() and sub["b"].sum() == full["b"].sum()
    assert compare_structures(a, b, ct_grid=ct) == compare_masks(
        full["a"], full["b"], ct.spacing_mm
    )


def test_different_frames_of_reference_are_refused():
    zs = np.arange(3) * 2.0
    a = _prism("GTV", 0, 10, 0, 10, zs, frame="1.2.3")
    b = _prism("GTV", 0, 10, 0, 10, zs, frame="1.2.4")
    with pytest.raises(GeometryError, match="frames of reference"):
        compare_structures(a, b)


def test_structure_without_contours_is_flagged_empty():
    zs = np.arange(3) * 2.0
    a = _prism("GTV", 0, 10, 0, 10, zs)
    empty = Structure("GTV", (), frame_of_reference_uid="1.2.3")
    m = compare_structures(a, empty)
    assert m.status == "b_empty" and m.dice == 0.0 and m.hausdorff_mm == np.inf
