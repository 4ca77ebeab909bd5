"""Grid geometry against SimpleITK's own index -> physical transform and hand values."""

import numpy as np
import pytest

from rtplan.errors import GeometryError
from rtplan.grid import Grid, grid_from_sitk

# direction columns for HFS, FFS and HFDL images (array axes k, j, i)
DIRECTIONS = {
    "HFS": ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    "FFS": ((0, 0, -1), (0, 1, 0), (-1, 0, 0)),
    "HFDL": ((0, -1, 0), (0, 0, 1), (1, 0, 0)),
}


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_index_to_world_matches_simpleitk(name):
    # truth: SimpleITK's TransformContinuousIndexToPhysicalPoint on the same image
    g = Grid((5, 6, 7), (-12.5, 30.0, 7.25), (2.5, 0.9, 1.1), direction=DIRECTIONS[name])
    img = g.to_sitk(np.zeros(g.shape, np.float32))
    rng = np.random.default_rng(3)
    idx = rng.uniform(-1, 6, size=(20, 3))
    ours = g.index_to_world(idx)
    theirs = np.array([img.TransformContinuousIndexToPhysicalPoint(tuple(p[::-1])) for p in idx])
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    np.testing.assert_allclose(g.world_to_index(ours), idx, atol=1e-9)
    assert grid_from_sitk(img).same_as(g)


def test_non_uniform_slices_interpolate_and_extrapolate():
    g = Grid((4, 2, 2), (0, 0, 0), (2.0, 1.0, 1.0), slice_offsets_mm=(0, 2, 5, 7))
    w = g.index_to_world([[1.5, 0, 0], [-1, 0, 0], [4, 0, 0]])
    np.testing.assert_allclose(w[:, 2], [3.5, -2.0, 9.0])  # by hand: halfway 2..5, then +-2 beyond
    np.testing.assert_allclose(g.world_to_index(w)[:, 0], [1.5, -1, 4])
    np.testing.assert_allclose(g.slice_thickness_mm, [2.0, 2.5, 2.5, 2.0])
    with pytest.raises(GeometryError):
        g.to_sitk(np.zeros(g.shape))


def test_contains_world_and_bad_grids():
    g = Grid((3, 4, 5), (0, 0, 0), (2.0, 1.0, 1.0))
    assert list(g.contains_world([[4.0, 3.0, 4.0], [4.1, 3.0, 4.0], [0, 0, -0.0005]])) == [
        True,
        False,
        True,
    ]
    with pytest.raises(GeometryError, match="orthonormal"):
        Grid((1, 1, 1), (0, 0, 0), (1, 1, 1), direction=((1, 0, 0), (1, 0, 0), (0, 0, 1)))
    with pytest.raises(GeometryError, match="positive"):
        Grid((1, 1, 1), (0, 0, 0), (1, 0, 1))
