"""Margins on masks (rtplan.volumes.margins): closed-form Minkowski sums and brute force.

Truths used here
----------------
* Box ``a x b x c`` plus the octant-wise ellipsoid with total widths ``X, Y, Z`` (left +
  right, anterior + posterior, superior + inferior):
  ``abc + ab Z + ac Y + bc X + pi/4 (a Y Z + b X Z + c X Y) + pi/6 X Y Z`` (faces, quarter
  elliptic cylinders along the edges, octant ellipsoids at the corners).  For symmetric
  margins ``X = Y = 2r``, ``Z = 2l`` this is the issue's formula.
* Sphere radius ``R`` plus / minus ball ``r``: ``4/3 pi (R +- r)^3``.
* Box shrunk by an ellipsoid: the box with each side reduced by the two semi-axes.
* Brute force: a union of voxel boxes expanded by the ellipsoid contains a voxel centre
  exactly when the centre's gauge distance to one of the boxes is at most 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import box_sum_volume

from rtplan.errors import GeometryError, InputError
from rtplan.grid import Grid
from rtplan.volumes.margins import Margins, apply_margin, expand_mask
from rtplan.volumes.subvoxel import SubvoxelMask


# ----------------------------------------------------------------------------- helpers
def box_fraction(shape, spacing, lo_mm, hi_mm):
    """Exact partial volume of an axis-aligned box (product of per-axis overlaps)."""
    fr = np.ones(shape, dtype=np.float32)
    for ax in range(3):
        centre = np.arange(shape[ax]) * spacing[ax]
        a, b = centre - spacing[ax] / 2, centre + spacing[ax] / 2
        ov = np.clip(np.minimum(b, hi_mm[ax]) - np.maximum(a, lo_mm[ax]), 0, None) / spacing[ax]
        fr = fr * ov.reshape([-1 if i == ax else 1 for i in range(3)])
    return fr.astype(np.float32)


def sphere_fraction(shape, spacing, centre_mm, radius_mm, sub=5):
    """Partial volume of a ball by ``sub^3`` supersampling (error ~1e-4 of the volume)."""
    h = np.asarray(spacing, dtype=float)
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, h, strict=True)], indexing="ij")
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    out = np.zeros(shape, dtype=np.float32)
    for o in np.stack(np.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3):
        d2 = sum((g + o[a] * h[a] - centre_mm[a]) ** 2 for a, g in enumerate(grids))
        out += d2 <= radius_mm**2
    return out / sub**3


# ----------------------------------------------------------------------------- Margins
def test_parse_shorthands_and_overrides():
    m = Margins.parse("radial=15, longitudinal=35")
    assert m.values == (15, 15, 15, 15, 35, 35)
    m = Margins.parse("all=5,superior=10; right = 2mm")
    assert m.values == (2, 5, 5, 5, 10, 5)
    assert Margins.parse("-3").values == (-3,) * 6
    assert Margins.parse({"radial": 1}).values == (1, 1, 1, 1, 0, 0)
    assert Margins.parse(str(m)) == m


@pytest.mark.parametrize(
    "text, words",
    [
        ("radial=15,sideways=3", "unknown margin direction 'sideways'"),
        ("radial=abc", "margin 'radial' must be a number"),
        ("radial=15,longitudinal=-3", "mix expansion and shrinking"),
        ("radial", "neither a number of mm nor KEY=MM"),
        ("radial:15", "neither a number of mm nor KEY=MM"),
        ("radial=15,superior", "'superior' is not KEY=MM"),
        ("", "empty margin"),
        ("nan", "neither a number"),
        ("radial=inf", "must be finite"),
        ("radial=1e308", "'right' must be within ±500 mm, got 1e\\+308"),
        ("-500.5", "must be within ±500 mm"),
    ],
)
def test_parse_errors_are_one_line(text, words):
    with pytest.raises(InputError, match=words) as err:
        Margins.parse(text)
    assert "\n" not in str(err.value)


def test_reflection_swaps_opposite_directions():
    m = Margins(1, 2, 3, 4, 5, 6)
    assert m.reflected().values == (2, 1, 4, 3, 6, 5)


@pytest.mark.parametrize(
    "direction, plus, minus",
    [
        # HFS axial: k -> +z (sup), j -> +y (post), i -> +x (left)
        (((0, 0, 1), (0, 1, 0), (1, 0, 0)), (5, 4, 2), (6, 3, 1)),
        # feet first: k -> -z, i -> -x (columns run to the patient's right)
        (((0, 0, -1), (0, 1, 0), (-1, 0, 0)), (6, 4, 1), (5, 3, 2)),
        # feet first prone: k -> -z, j -> -y (rows run anteriorly), i -> +x
        (((0, 0, -1), (0, -1, 0), (1, 0, 0)), (6, 3, 2), (5, 4, 1)),
    ],
)
def test_patient_directions_map_to_array_axes(direction, plus, minus):
    # right=1 left=2 anterior=3 posterior=4 superior=5 inferior=6
    p, m = Margins(1, 2, 3, 4, 5, 6).axis_semi_axes(np.array(direction, float).T)
    assert p.tolist() == list(plus) and m.tolist() == list(minus)


def test_oblique_grid_is_refused():
    c, s = math.cos(0.3), math.sin(0.3)
    d = np.array([[0, 0, 1], [0, c, s], [0, -s, c]], float).T
    with pytest.raises(GeometryError, match="patient axes"):
        Margins.isotropic(5).axis_semi_axes(d)


# ----------------------------------------------------------------------------- exact cases
def test_single_voxel_row_asymmetric():
    # a voxel box [3.5, 4.5] expanded 2.4 mm left (+x) and 1 mm right: centres 3..6
    m = np.zeros((1, 1, 11), bool)
    m[0, 0, 4] = True
    out = expand_mask(m, "left=2.4,right=1", spacing_mm=(1, 1, 1))
    assert np.flatnonzero(out[0, 0]).tolist() == [3, 4, 5, 6]


def brute_force_sum(mask, spacing, plus, minus):
    """Voxel centres within gauge distance 1 of a voxel box of ``mask`` (brute force); a
    zero semi-axis allows no offset that way."""
    h = np.asarray(spacing, float)
    boxes = np.argwhere(mask) * h
    pts = np.argwhere(np.ones(mask.shape, bool)) * h
    best = np.full(len(pts), np.inf)
    for c in boxes:
        v = pts - np.clip(pts, c - h / 2, c + h / 2)
        v = np.where(np.abs(v) < 1e-9, 0.0, v)
        semi = np.where(v > 0, plus, minus)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(v == 0, 0.0, np.where(semi > 0, v / semi, np.inf))
        best = np.minimum(best, np.sum(r * r, axis=1))
    gauge = np.sqrt(best).reshape(mask.shape)
    return gauge <= 1.0 + 1e-9, gauge


@pytest.mark.parametrize(
    "margins",
    [
        "4",
        "radial=3,longitudinal=7",
        "right=2,left=5,anterior=4,posterior=1,superior=6,inferior=3",
        "right=2,left=5,anterior=0,posterior=3,superior=4,inferior=1",
        "radial=3,superior=0,inferior=0",
        "-2",
        "right=-1,left=-3,anterior=-2,posterior=0,superior=-4,inferior=-2",
    ],
)
@pytest.mark.parametrize("seed", [7, 8, 9])
def test_binary_mask_matches_brute_force_minkowski_sum(margins, seed):
    """Boxes, bars and random lumps (concave edges and corners): every voxel centre is
    classified as the brute-force Minkowski sum of the voxel boxes (or, shrinking, of
    the complement's) classifies it."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    shape, spacing = (22, 20, 24), (2.0, 1.0, 1.5)
    mask = np.zeros(shape, bool)
    mask[8:14, 7:13, 8:16] = True
    mask[11:13, 5:15, 14:19] = True  # a bar sticking out (concave edges)
    mask[6:16, 9:11, 10:12] |= rng.random((10, 2, 2)) > 0.3
    mask[7:15, 6:14, 6:18] |= ndi.binary_opening(rng.random((8, 8, 12)) > 0.6)
    m = Margins.parse(margins)
    plus, minus = m.axis_semi_axes()
    out = expand_mask(mask, m, spacing_mm=spacing)
    if m.is_expansion:
        truth, _ = brute_force_sum(mask, spacing, plus, minus)
    else:  # the complement expanded by the mirrored shape (its boxes within reach)
        near = ndi.binary_dilation(mask, iterations=5)  # 5 voxels >= 5 mm > every margin
        grown, _ = brute_force_sum(~mask & near, spacing, minus, plus)
        truth = mask & ~grown
    assert truth.sum() > 40
    np.testing.assert_array_equal(out, truth)


# ----------------------------------------------------------------------------- volumes
@pytest.mark.parametrize(
    "margins",
    [
        "radial=15,longitudinal=35",
        "radial=5,longitudinal=5",
        "right=5,left=12,anterior=8,posterior=3,superior=20,inferior=10",
        "radial=15,superior=35,inferior=20",
    ],
)
def test_box_expansion_volume_closed_form(margins):
    a, b, c = 40.3, 30.7, 30.0
    m = Margins.parse(margins)
    h = (1.0, 1.0, 1.0)
    lo = np.array([m.inferior, m.anterior, m.right]) + 3.2
    hi = lo + [c, b, a]
    shape = tuple(int(v) for v in np.ceil(hi + [m.superior, m.posterior, m.left] + 3))
    region = SubvoxelMask.from_fraction(box_fraction(shape, h, lo, hi), h)
    assert region.volume_mm3 == pytest.approx(a * b * c, rel=1e-5)
    out = apply_margin(region, m)
    # sharp box edges cut through voxels are the hardest case for one plane per voxel
    assert out.volume_mm3 == pytest.approx(box_sum_volume(a, b, c, m), rel=0.01)


def test_box_shrink_volume_closed_form():
    a, b, c = 40.3, 30.7, 36.4
    h = (1.0, 1.0, 1.0)
    lo = np.array([3.3, 3.6, 3.9])
    shape = tuple(int(v) for v in np.ceil(lo + [c, b, a] + 3))
    region = SubvoxelMask.from_fraction(box_fraction(shape, h, lo, lo + [c, b, a]), h)
    m = Margins.parse("right=2,left=5,anterior=4,posterior=1,superior=6,inferior=3")
    out = apply_margin(region, Margins(*(-v for v in m.values)))
    truth = (a - 7) * (b - 5) * (c - 9)
    assert out.volume_mm3 == pytest.approx(truth, rel=0.005)


@pytest.mark.parametrize("radius, margin", [(10.6, 5.0), (10.6, 15.0), (15.0, 3.0), (10.6, 1.0)])
def test_sphere_expand_and_shrink_closed_form(radius, margin):
    h = (1.0, 1.0, 1.0)
    n = int(2 * (radius + margin) + 8)
    centre = np.array([n / 2 + 0.31, n / 2 - 0.17, n / 2 + 0.44])
    region = SubvoxelMask.from_fraction(sphere_fraction((n, n, n), h, centre, radius), h)
    grown = apply_margin(region, Margins.isotropic(margin))
    assert grown.volume_mm3 == pytest.approx(4 / 3 * math.pi * (radius + margin) ** 3, rel=0.006)
    if margin < radius / 2:
        shrunk = apply_margin(region, Margins.isotropic(-margin))
        assert shrunk.volume_mm3 == pytest.approx(
            4 / 3 * math.pi * (radius - margin) ** 3, rel=0.01
        )


def test_fractions_of_the_reconstruction():
    # exact box fractions -> planes -> fractions again: the same numbers, the same volume
    h = (2.0, 1.0, 0.8)
    frac = box_fraction((12, 14, 16), h, [3.3, 2.2, 1.9], [17.1, 10.45, 9.7])
    region = SubvoxelMask.from_fraction(frac, h)
    assert np.allclose(region.fraction(), frac, atol=2e-6)
    assert region.volume_mm3 == pytest.approx(13.8 * 8.25 * 7.8, rel=1e-6)


def test_partial_volume_beats_binary_input():
    # 5 cc sphere + 5 mm: the binary mask (voxel boxes) overshoots, fractions do not
    h = (1.0, 1.0, 1.0)
    centre = np.array([20.3, 19.8, 20.1])
    frac = sphere_fraction((40, 40, 40), h, centre, 10.6)
    truth = 4 / 3 * math.pi * 15.6**3
    exact = apply_margin(SubvoxelMask.from_fraction(frac, h), Margins.isotropic(5)).volume_mm3
    boxes = expand_mask(frac >= 0.5, "5", spacing_mm=h).sum()
    assert abs(exact / truth - 1) < 0.006
    assert abs(boxes / truth - 1) > 2 * abs(exact / truth - 1)


def test_same_result_for_every_patient_orientation():
    """A box expanded asymmetrically on an HFS grid and on a feet-first prone grid (the same
    voxel centres, every array axis reversed) gives the same volume and the same LPS
    extent, each direction's margin landing on its side of the patient."""
    m = Margins.parse("right=3,left=9,anterior=6,posterior=2,superior=12,inferior=4")
    h = (1.0, 1.0, 1.0)
    size = np.array([20.0, 15.0, 18.0])  # x, y, z from the origin of LPS
    shape = (42, 30, 44)  # k, j, i
    first = np.array([-7.7, -10.3, -8.2])  # LPS of the lowest voxel centre
    last = first + np.array(shape[::-1]) - 1
    grids = [
        Grid(shape, tuple(first), h),
        Grid(shape, tuple(last), h, direction=((0, 0, -1), (0, -1, 0), (-1, 0, 0))),
    ]
    results = []
    for grid in grids:
        xyz = grid.index_to_world(np.argwhere(np.ones(shape, bool)))
        frac = np.ones(len(xyz))
        for a in range(3):  # exact box fractions from per-axis overlaps
            ov = np.minimum(xyz[:, a] + 0.5, size[a]) - np.maximum(xyz[:, a] - 0.5, 0.0)
            frac *= np.clip(ov, 0, 1)
        frac = frac.reshape(shape).astype(np.float32)
        out = apply_margin(SubvoxelMask.from_fraction(frac, h), m, grid.direction_matrix)
        inside = grid.index_to_world(np.argwhere(out.centre_inside))
        results.append((out.volume_mm3, inside.min(axis=0), inside.max(axis=0)))
    (v1, lo1, hi1), (v2, lo2, hi2) = results
    assert v1 == pytest.approx(v2, rel=1e-4)
    assert np.allclose(lo1, lo2) and np.allclose(hi1, hi2)
    assert v1 == pytest.approx(box_sum_volume(*size, m), rel=0.015)
    # extents: right (-x) 3, anterior (-y) 6, inferior (-z) 4; left 9, posterior 2, superior 12
    assert np.all(np.abs(lo1 - (0 - np.array([3, 6, 4]))) <= 1.0)
    assert np.all(np.abs(hi1 - (size + [9, 2, 12])) <= 1.0)


def test_shrinking_past_the_structure_leaves_nothing():
    h = (1.0, 1.0, 1.0)
    region = SubvoxelMask.from_fraction(box_fraction((20, 20, 20), h, [5, 5, 5], [11, 15, 15]), h)
    assert apply_margin(region, Margins.isotropic(-3.5)).is_empty
    assert not apply_margin(region, Margins.isotropic(-2.5)).is_empty


@pytest.mark.parametrize(
    "margins", ["left=10", "right=0,left=10,anterior=3,posterior=3,superior=0,inferior=6"]
)
def test_zero_margins_on_some_axes(margins):
    # a stack of slabs (z faces on voxel faces), as structures are rasterised
    a, b, c = 30.4, 25.7, 12.0
    m = Margins.parse(margins)
    h = (1.0, 1.0, 1.0)
    lo = np.array([8.5, 5.3, 3.6])
    shape = (30, 38, 48)
    region = SubvoxelMask.from_fraction(box_fraction(shape, h, lo, lo + [c, b, a]), h, slabs=True)
    out = apply_margin(region, m)
    # the plane of a voxel on a box edge is a chamfer; with no margin across the face it
    # stays visible along the expansion (a known limit, docs/volumes.md)
    assert out.volume_mm3 == pytest.approx(box_sum_volume(a, b, c, m), rel=0.015)


def test_nearest_seed_matches_scipy_edt_for_symmetric_margins():
    """Symmetric margins: the gauge is the Euclidean distance with sampling = spacing /
    semi-axis, so scipy's exact EDT is the truth within reach; farther points are inf."""
    from scipy import ndimage as ndi

    from rtplan.volumes.nearest_seed import nearest_seed

    rng = np.random.default_rng(7)
    seeds = rng.random((48, 20, 22)) < 0.002
    seeds[[0, 24, 25, 47], 10, 11] = True  # seeds on the array border too
    h, semi, reach = np.array([1.0, 0.8, 1.2]), np.array([3.0, 2.0, 2.5]), 1.3
    dist, nearest = nearest_seed(seeds, h, semi, semi, reach)
    whole = ndi.distance_transform_edt(~seeds, sampling=h / semi)
    near = whole <= reach - 1e-9
    assert near.sum() > 1000 and (~near).sum() > 1000
    np.testing.assert_allclose(dist[near], whole[near], rtol=0, atol=1e-12)
    far = whole > reach + 1e-9
    assert np.all(np.isinf(dist[far])) and np.all(nearest[far] == -1)
    flat = nearest[near]
    assert seeds.reshape(-1)[flat].all()
    at = np.stack(np.unravel_index(flat, seeds.shape), axis=1)
    offsets = (np.argwhere(near) - at) * h / semi
    np.testing.assert_allclose(np.linalg.norm(offsets, axis=1), whole[near], atol=1e-12)


@pytest.mark.parametrize(
    "plus, minus",
    [
        ((4.0, 2.0, 3.0), (1.0, 5.0, 2.5)),
        ((4.0, 0.0, 3.0), (1.0, 2.0, 0.0)),
        ((0, 0, 3), (0, 0, 2)),
    ],
)
def test_nearest_seed_matches_brute_force_for_asymmetric_margins(plus, minus):
    """Asymmetric and one-sided margins: the distance is the minimum over every seed of
    the octant-wise gauge of the offset (a zero semi-axis forbids offsets that way)."""
    from rtplan.volumes.nearest_seed import nearest_seed

    rng = np.random.default_rng(11)
    shape, h, reach = (14, 17, 19), np.array([1.5, 1.0, 0.9]), 1.4
    seeds = rng.random(shape) < 0.004
    plus, minus = np.asarray(plus), np.asarray(minus)
    dist, nearest = nearest_seed(seeds, h, plus, minus, reach, threads=3)
    pts = np.argwhere(np.ones(shape, bool))
    src = np.argwhere(seeds)
    off = (pts[:, None, :] - src[None, :, :]) * h  # point minus seed (mm)
    semi = np.where(off > 0, plus, minus)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(off == 0, 0.0, np.where(semi > 0, off / semi, np.inf))
    brute = np.sqrt(np.sum(r * r, axis=2)).min(axis=1).reshape(shape)
    within = brute <= reach - 1e-9
    assert within.sum() > 50 and (~within).sum() > 100
    np.testing.assert_allclose(dist[within], brute[within], rtol=0, atol=1e-12)
    assert np.all(np.isinf(dist[brute > reach + 1e-9]))
    # the reported seed is at the reported distance
    at = np.stack(np.unravel_index(nearest[within], shape), axis=1)
    o = (np.argwhere(within) - at) * h
    s = np.where(o > 0, plus, minus)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.sqrt(np.sum(np.where(o == 0, 0.0, o / s) ** 2, axis=1))
    np.testing.assert_allclose(g, dist[within], atol=1e-12)


@pytest.mark.parametrize(
    "margins", ["5", "right=2,left=6,anterior=0,posterior=4,superior=5,inferior=1"]
)
def test_result_does_not_depend_on_threads(monkeypatch, margins):
    """Candidates are settled in chunks on threads: the result must be bit-identical for
    any split (the boundary pieces each voxel sees are those of the whole region)."""
    from rtplan.volumes import margins as margins_module

    spacing = (2.0, 1.0, 1.2)
    frac = sphere_fraction((40, 56, 52), spacing, (38.0, 27.0, 30.0), 16.0, sub=3)
    frac[:, 20:36, 24:30] = 1.0  # a slot: concave edges and exposed full voxels
    region = SubvoxelMask.from_fraction(frac, spacing).padded((5, 9, 9), (5, 9, 9))
    monkeypatch.setattr(margins_module, "_THREADS", 1)
    one = apply_margin(region, margins)
    monkeypatch.setattr(margins_module, "_THREADS", 7)
    monkeypatch.setattr(margins_module, "_CHUNK_VOXELS", 100)
    seven = apply_margin(region, margins)
    assert np.isfinite(one.phi).sum() > 3000
    np.testing.assert_array_equal(one.phi, seven.phi)
    np.testing.assert_array_equal(one.normal, seven.normal)
