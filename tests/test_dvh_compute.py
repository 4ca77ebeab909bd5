"""rtplan.dvh.compute: coverage, frames, holes, orientations, end caps (closed-form truths)."""

import sys

import numpy as np
import pytest

from rtplan.dose import Dose
from rtplan.dvh.compute import compute
from rtplan.errors import ContourError, GeometryError
from rtplan.grid import Grid
from rtplan.structure import Contour, Structure
from rtplan.testing.dvh_phantoms import LinearDose, Shape, SlabTruth, covering_grid, shape_structure


def _prism(polys, zs, spacing=2.0, **kw):
    """Structure with the same polygons on every plane z in zs."""
    cs = tuple(Contour(np.c_[np.asarray(p, float), np.full(len(p), z)]) for z in zs for p in polys)
    return Structure(kw.pop("name", "s"), cs, slice_spacing_mm=spacing, **kw)


SQUARE = np.array([[-10, -10], [10, -10], [10, 10], [-10, 10]], float)
HOLE = np.array([[-4, -4], [-4, 4], [4, 4], [4, -4]], float)  # clockwise, inside SQUARE


def test_part_outside_dose_grid_is_reported_not_dosed():
    # truth: a 20 mm cube (8 cc); the dose grid ends at x = 0 (voxel centres to -0.5, +0.5
    # half-voxel rim): half the cube (4 cc) is outside
    st = _prism([SQUARE], np.arange(-9.0, 10.0, 2.0))
    grid = Grid((15, 30, 20), (-19.5, -15.0, -16.0), (2.0, 1.0, 1.0))
    dose = LinearDose(20.0, (0.5, 0.0, 0.0)).on_grid(grid)
    dvh = compute(st, dose)
    assert dvh.volume_cc == pytest.approx(8.0)
    assert dvh.outside_dose_cc == pytest.approx(4.0)
    assert dvh.flags and "outside the dose grid" in dvh.flags[0]
    assert np.isnan(dvh.metric("D95%")) and np.isnan(dvh.metric("Dmean"))
    # over the dosed half: 20 + x/2 up to the last voxel centre x = -0.5, then constant
    # 19.75 Gy in the half-voxel rim [-0.5, 0]:
    # (int_{-10}^{-0.5} (20 + x/2) dx + 0.5 * 19.75) / 10 = 17.49375 Gy
    assert dvh.metric("Dmean", allow_outside=True) == pytest.approx(17.49375, abs=1e-9)


def test_structure_entirely_outside():
    st = _prism([SQUARE + 100.0], [0.0, 2.0])
    grid = Grid((5, 10, 10), (-5.0, -5.0, -4.0), (2.0, 1.0, 1.0))
    dvh = compute(st, Dose(np.ones(grid.shape), grid))
    assert dvh.dosed_volume_cc == 0.0 and dvh.outside_dose_cc == pytest.approx(1.6)


def test_nan_dose_counts_as_outside():
    # truth: dose NaN for x > 0.5 (voxel centres x >= 1): cells interpolating from them
    # (x > 0) are outside: half the cube
    st = _prism([SQUARE], np.arange(-9.0, 10.0, 2.0))
    grid = Grid((15, 30, 30), (-15.0, -15.0, -16.0), (2.0, 1.0, 1.0))
    values = np.full(grid.shape, 10.0)
    values[:, :, 16:] = np.nan  # x = -15 + 16 = 1 and beyond
    dvh = compute(st, Dose(values, grid), resolution_mm=0.5)
    assert dvh.outside_dose_cc == pytest.approx(4.0)


def test_nan_dose_slices_affect_only_the_planes_that_reach_them():
    # truth: dose slices at z = -15, -13, ..., 13, NaN from z = 7 on; a slab averages the
    # dose of the slices around its levels, so the slabs [4, 6], [6, 8] and [8, 10] (planes
    # 5, 7, 9) reach a NaN slice and count as outside: 3 x 20 x 20 x 2 mm^3 = 2.4 cc; the
    # other seven planes keep their dose (10 Gy)
    st = _prism([SQUARE], np.arange(-9.0, 10.0, 2.0))
    grid = Grid((15, 30, 30), (-15.0, -15.0, -15.0), (2.0, 1.0, 1.0))
    values = np.full(grid.shape, 10.0)
    values[11:] = np.nan  # z = -15 + 2 * 11 = 7 and beyond
    dvh = compute(st, Dose(values, grid), resolution_mm=0.5)
    assert dvh.outside_dose_cc == pytest.approx(2.4)
    assert dvh.dosed_volume_cc == pytest.approx(5.6)
    assert dvh.metric("Dmean", allow_outside=True) == pytest.approx(10.0)


def test_frame_of_reference_mismatch():
    st = _prism([SQUARE], [0.0, 2.0], frame_of_reference_uid="1.2.3")
    grid = Grid((5, 30, 30), (-15.0, -15.0, -4.0), (2.0, 1.0, 1.0))
    dose = Dose(np.ones(grid.shape), grid, frame_of_reference_uid="1.2.4", source="d.dcm")
    with pytest.raises(GeometryError, match="frame of reference"):
        compute(st, dose)


def test_volume_cc_is_the_structure_volume_inside_and_partly_outside_the_grid():
    # truth: a 20 x 20 mm square on 10 planes 2 mm apart (slab convention) is
    # 20 * 20 * 20 mm^3 = 8 cc; Structure.volume_cc computes the same independently
    st = _prism([SQUARE], np.arange(-9.0, 10.0, 2.0))
    assert st.volume_cc == pytest.approx(8.0, rel=1e-12)
    lin = LinearDose(20.0, (0.5, 0.0, 0.0))
    inside = compute(st, lin.on_grid(covering_grid(st, 2.0)))
    assert isinstance(inside.volume_cc, float)
    assert inside.outside_dose_cc == 0.0
    assert inside.volume_cc == pytest.approx(st.volume_cc, rel=1e-12)
    assert inside.sample_volume_cc.sum() == pytest.approx(st.volume_cc, rel=1e-12)
    # the dose grid ends at x = 0: 4 cc dosed, 4 cc outside, still the 8 cc structure
    grid = Grid((15, 30, 20), (-19.5, -15.0, -16.0), (2.0, 1.0, 1.0))
    part = compute(st, lin.on_grid(grid))
    assert part.sample_volume_cc.sum() == pytest.approx(4.0, rel=1e-12)
    assert part.outside_dose_cc == pytest.approx(4.0, rel=1e-12)
    assert part.volume_cc == pytest.approx(part.dosed_volume_cc + part.outside_dose_cc)
    assert part.volume_cc == pytest.approx(st.volume_cc, rel=1e-12)


def test_ring_with_hole_matches_slab_truth():
    # truth: SlabTruth (even-odd holes, closed form)
    st = _prism([SQUARE, HOLE], np.arange(-5.0, 6.0, 2.0))
    lin = LinearDose(30.0, (0.7, -0.4, 0.3))
    dvh = compute(st, lin.on_grid(covering_grid(st, 2.5, shift_mm=(0.3, 0.2, 0.1))))
    truth = SlabTruth(st, lin)
    assert dvh.volume_cc == pytest.approx(truth.volume_cc, rel=1e-12)
    assert dvh.volume_cc == pytest.approx((400 - 64) * 12 / 1000)
    for m in ("Dmean", "Dmin", "Dmax"):
        assert dvh.metric(m) == pytest.approx(truth.metric(m), rel=1e-9)
    for m in ("D95%", "D50%", "D2%"):
        assert dvh.metric(m) == pytest.approx(truth.metric(m), rel=2e-3)


@pytest.mark.parametrize(
    "direction",
    [
        ((0, 0, -1), (0, -1, 0), (1, 0, 0)),  # HFP: i -> -x, j -> -y
        ((0, 0, 1), (0, 1, 0), (-1, 0, 0)),  # slice order reversed (FFS-like)
        ((0, 1, 0), (0, 0, 1), (1, 0, 0)),  # decubitus: i -> y, j -> x
    ],
)
def test_dose_grid_orientation_does_not_change_the_dvh(direction):
    # truth: the same linear dose on an HFS grid
    st = shape_structure(Shape("sphere", (0.0, 0.0, 0.0), 8.0), 2.0, z_offset_mm=0.5)
    lin = LinearDose(30.0, (0.5, 0.8, -0.6))
    ref = compute(st, lin.on_grid(covering_grid(st, 2.0)))
    d = np.asarray(direction, float).T.T  # rows: LPS component, columns: array axis
    grid = Grid((20, 20, 20), (0.0, 0.0, 0.0), (2.0, 2.0, 2.0), tuple(map(tuple, d)))
    # shift so the grid covers the sphere
    lo, hi = grid.world_bounds_mm()
    grid = Grid(
        grid.shape,
        tuple(np.asarray(grid.origin_mm) - (lo + hi) / 2),
        grid.spacing_mm,
        grid.direction,
    )
    dvh = compute(st, lin.on_grid(grid))
    for m in ("Dmean", "Dmin", "Dmax", "D95%", "D5%"):
        assert dvh.metric(m) == pytest.approx(ref.metric(m), rel=1e-4)


def test_oblique_dose_grid_is_rejected():
    c, s = np.cos(0.3), np.sin(0.3)
    grid = Grid((4, 4, 4), (0, 0, 0), (1, 1, 1), ((0, -s, c), (0, c, s), (1, 0, 0)))
    st = _prism([SQUARE], [0.0, 2.0])
    with pytest.raises(GeometryError, match="oblique"):
        compute(st, Dose(np.ones(grid.shape), grid))


def test_uneven_dose_slices_and_end_caps():
    # truth: SlabTruth with both end-cap conventions; dose slices unevenly spaced
    st = shape_structure(Shape("cylinder", (0.0, 0.0, 0.0), 6.0, 14.0), 2.0, z_offset_mm=1.0)
    lin = LinearDose(30.0, (0.0, 0.0, 1.5))
    offsets = tuple(np.cumsum([0.0] + [1.0, 2.5, 1.5, 3.0] * 4))
    grid = Grid((17, 24, 24), (-11.5, -11.5, -13.0), (1.0, 1.0, 1.0), slice_offsets_mm=offsets)
    dose = lin.on_grid(grid)
    for cap in ("slab", "none"):
        truth = SlabTruth(st, lin, end_cap=cap)
        dvh = compute(st, dose, end_cap=cap)
        assert dvh.volume_cc == pytest.approx(st.volume_cc_with(cap), rel=1e-12)
        assert dvh.volume_cc == pytest.approx(truth.volume_cc, rel=1e-12)
        for m in ("Dmean", "Dmin", "Dmax", "D99%", "D50%", "D1%"):
            assert dvh.metric(m) == pytest.approx(truth.metric(m), rel=1e-6)


def test_crossing_contours_are_an_error():
    st = _prism([SQUARE, SQUARE + 5.0], [0.0, 2.0])
    grid = Grid((5, 40, 40), (-20.0, -20.0, -4.0), (2.0, 1.0, 1.0))
    with pytest.raises(ContourError, match="cross"):
        compute(st, Dose(np.ones(grid.shape), grid))


def test_dose_cell_sampling_equals_sub_cell_sampling(monkeypatch):
    # sub-cells as large as the dose cells (nx = ny = 1) are evaluated on the whole crop at
    # once; the run-by-run evaluation (checked against closed forms above) gives the same
    # samples, bit for bit, with a hole and a NaN corner of the dose
    engine = sys.modules[compute.__module__]
    st = _prism([SQUARE * 1.3, HOLE], np.arange(-9.0, 10.0, 2.0))
    grid = Grid((15, 40, 40), (-19.5, -20.0, -16.0), (2.0, 1.0, 1.0))
    values = LinearDose(20.0, (0.5, 0.3, 0.2)).on_grid(grid).values_gy
    values[-3:, :4, :4] = np.nan
    fast = compute(st, Dose(values, grid), resolution_mm=1.0)
    monkeypatch.setattr(engine, "_dose_cell_samples", engine._sub_cell_samples)
    slow = compute(st, Dose(values, grid), resolution_mm=1.0)
    assert fast.conventions["resolution_mm"] == [1.0, 1.0]
    assert len(fast.sample_dose_gy) > 1000
    for a, b in (("sample_dose_gy",) * 2, ("sample_volume_cc",) * 2, ("sample_spread_gy",) * 2):
        assert np.array_equal(getattr(fast, a), getattr(slow, b))
    assert (fast.min_gy, fast.max_gy, fast.outside_dose_cc) == (
        slow.min_gy, slow.max_gy, slow.outside_dose_cc)  # fmt: skip


def test_coarse_resolution_keeps_volume_and_mean_exact():
    # exact area moments make volume and Dmean independent of the sub-cell size
    st = shape_structure(Shape("cone", (0.5, 0.2, 0.0), 10.0, 20.0), 2.0, z_offset_mm=0.3)
    lin = LinearDose(30.0, (0.9, 0.4, 0.2))
    truth = SlabTruth(st, lin)
    dvh = compute(st, lin.on_grid(covering_grid(st, 3.0)), resolution_mm=3.0)
    assert dvh.volume_cc == pytest.approx(truth.volume_cc, rel=1e-12)
    assert dvh.mean_gy == pytest.approx(truth.mean_gy, rel=1e-12)
    assert dvh.conventions["resolution_mm"] == [3.0, 3.0]
