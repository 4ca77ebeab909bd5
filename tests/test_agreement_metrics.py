"""Pairwise agreement metrics on masks against independent truths.

Truths used:
* DeepMind's ``surface-distance`` package (the reference implementation of the surfel
  convention) on the same masks and spacing: lookup tables, HD, HD95, directed means,
  surface Dice and overlaps to 1e-6 relative (in practice they agree to ~1e-15).
* SimpleITK's LabelOverlapMeasuresImageFilter for Dice and Jaccard.
* Closed forms: shifted boxes (exact voxel counts and lattice distances), offset and
  concentric spheres (continuum geometry, within the discretisation of the grid), and
  hand-computed contour lengths for the added path length.
"""

import math

import numpy as np
import pytest
from scipy import integrate, ndimage, optimize

from rtplan.agreement import (
    MaskSet,
    PairMetrics,
    added_path_length,
    compare_masks,
    dice,
    jaccard,
    surface_distances,
    surface_elements,
    volume_cc,
)
from rtplan.agreement import surface as surface_module
from rtplan.agreement.surfels import contour_length_table, surfel_area_table
from rtplan.errors import GeometryError, InputError

sd = pytest.importorskip("surface_distance", reason="DeepMind surface-distance not installed")

#: CT-like anisotropic spacing, array order (slice, row, column).
CT_SPACING = (3.0, 0.98, 0.98)


def _blob(rng, shape, sigma=2.0, level=0.4):
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return field > level * field.std()


def _reference(a, b, spacing, tolerance_mm=2.0):
    """The same metrics from the DeepMind package."""
    r = sd.compute_surface_distances(a, b, spacing)
    return r, {
        "hd": sd.compute_robust_hausdorff(r, 100),
        "hd95": sd.compute_robust_hausdorff(r, 95),
        "hd90": sd.compute_robust_hausdorff(r, 90),
        "means": sd.compute_average_surface_distance(r),
        "sdice": sd.compute_surface_dice_at_tolerance(r, tolerance_mm),
        "overlap": sd.compute_surface_overlap_at_tolerance(r, tolerance_mm),
    }


# ---------------------------------------------------------------- lookup tables
@pytest.mark.parametrize("seed", range(4))
def test_derived_surfel_tables_equal_deepmind_tables(seed):
    """Our re-derived marching-cubes areas equal DeepMind's 256-entry table (and 2-D)."""
    from surface_distance import lookup_tables

    spacing = np.random.default_rng(seed).uniform(0.2, 5.0, 3)
    ours = surfel_area_table(spacing)
    theirs = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        contour_length_table(spacing[:2]),
        lookup_tables.create_table_neighbour_code_to_contour_length(spacing[:2]),
        rtol=1e-12,
    )


def test_surfels_of_a_box_cover_its_area_and_match_deepmind_areas():
    """A box's surfel areas sum to DeepMind's total (and to the rounded-box area)."""
    m = np.zeros((8, 12, 14), bool)
    m[2:6, 3:9, 4:12] = True
    s = surface_elements(m, CT_SPACING)
    r = sd.compute_surface_distances(m, m, CT_SPACING)
    assert s.total == pytest.approx(r["surfel_areas_gt"].sum(), rel=1e-12)
    assert len(s) == len(r["surfel_areas_gt"])


# ---------------------------------------------------------------- DeepMind equality
@pytest.mark.parametrize("seed", range(12))
def test_surface_metrics_equal_deepmind_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(12, 36, 3))
    a = _blob(rng, shape)
    b = _blob(rng, shape) if seed % 2 else a ^ (rng.random(shape) < 0.03)
    assert a.any() and b.any()
    _, ref = _reference(a, b, CT_SPACING)
    ours = surface_distances(a, b, CT_SPACING)
    assert ours.hausdorff_mm() == pytest.approx(ref["hd"], rel=1e-6)
    assert ours.hd_percentile_mm(95) == pytest.approx(ref["hd95"], rel=1e-6)
    assert ours.hd_percentile_mm(90) == pytest.approx(ref["hd90"], rel=1e-6)
    np.testing.assert_allclose(ours.directed_mean_mm(), ref["means"], rtol=1e-6)
    assert ours.surface_dice(2.0) == pytest.approx(ref["sdice"], rel=1e-6)
    np.testing.assert_allclose(ours.surface_overlap(2.0), ref["overlap"], rtol=1e-6)


def test_metrics_equal_deepmind_when_masks_touch_the_array_edge_and_the_tree_is_used(monkeypatch):
    """Edge voxels have closed surfaces; points beyond the lattice ball use the k-d tree."""
    monkeypatch.setattr(surface_module, "SEARCH_OFFSETS", 7)
    rng = np.random.default_rng(42)
    a = _blob(rng, (10, 20, 20), level=-0.3)  # large blobs reaching every face
    b = _blob(rng, (10, 20, 20), level=0.6)
    _, ref = _reference(a, b, CT_SPACING)
    ours = surface_distances(a, b, CT_SPACING)
    assert ours.hausdorff_mm() == pytest.approx(ref["hd"], rel=1e-6)
    assert ours.hd_percentile_mm(95) == pytest.approx(ref["hd95"], rel=1e-6)
    np.testing.assert_allclose(ours.directed_mean_mm(), ref["means"], rtol=1e-6)


def test_far_apart_objects_equal_deepmind():
    a = np.zeros((6, 10, 200), bool)
    a[2:4, 3:6, 2:6] = True
    b = np.zeros_like(a)
    b[1:5, 4:8, 150:160] = True
    _, ref = _reference(a, b, (2.5, 1.0, 1.0))
    ours = surface_distances(a, b, (2.5, 1.0, 1.0))
    assert ours.hausdorff_mm() == pytest.approx(ref["hd"], rel=1e-6)
    np.testing.assert_allclose(ours.directed_mean_mm(), ref["means"], rtol=1e-6)
    assert ours.surface_dice(3.0) == 0.0


def test_pooled_hd95_and_assd_follow_their_definitions_on_deepmind_distances():
    """hd95_pooled / ASSD / MASD computed independently from DeepMind's raw distances."""
    rng = np.random.default_rng(7)
    a, b = _blob(rng, (14, 30, 30)), _blob(rng, (14, 30, 30))
    r, ref = _reference(a, b, CT_SPACING)
    d = np.concatenate([r["distances_gt_to_pred"], r["distances_pred_to_gt"]])
    w = np.concatenate([r["surfel_areas_gt"], r["surfel_areas_pred"]])
    order = np.lexsort((w, d))
    cum = np.cumsum(w[order]) / w.sum()
    pooled95 = d[order][min(np.searchsorted(cum, 0.95), len(d) - 1)]
    ours = surface_distances(a, b, CT_SPACING)
    assert ours.pooled_percentile_mm(95) == pytest.approx(pooled95, rel=1e-6)
    assert ours.assd_mm() == pytest.approx(np.sum(d * w) / np.sum(w), rel=1e-6)
    assert ours.masd_mm() == pytest.approx(np.mean(ref["means"]), rel=1e-6)
    m = compare_masks(a, b, CT_SPACING, tolerance_mm=2.0)
    assert m.hd95_pooled_mm == pytest.approx(pooled95, rel=1e-6)
    assert m.hd95_mm == pytest.approx(ref["hd95"], rel=1e-6)
    assert (m.hausdorff_a_to_b_mm, m.hausdorff_b_to_a_mm) == pytest.approx(
        (r["distances_gt_to_pred"].max(), r["distances_pred_to_gt"].max()), rel=1e-6
    )


# ---------------------------------------------------------------- SimpleITK equality
@pytest.mark.parametrize("seed", range(3))
def test_dice_and_jaccard_equal_simpleitk_label_overlap(seed):
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    a, b = _blob(rng, (10, 25, 25)), _blob(rng, (10, 25, 25))
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(
        sitk.GetImageFromArray(a.astype(np.uint8)), sitk.GetImageFromArray(b.astype(np.uint8))
    )
    assert dice(a, b) == pytest.approx(f.GetDiceCoefficient(), rel=1e-12)
    assert jaccard(a, b) == pytest.approx(f.GetJaccardCoefficient(), rel=1e-12)
    m = compare_masks(a, b, CT_SPACING)
    assert (m.dice, m.jaccard) == pytest.approx(
        (f.GetDiceCoefficient(), f.GetJaccardCoefficient()), rel=1e-12
    )


# ---------------------------------------------------------------- closed forms
@pytest.mark.parametrize("axis,shift", [(0, 1), (1, 3), (2, 2)])
def test_shifted_boxes_exact(axis, shift):
    """Box shifted by n voxels: Dice = 1 - n/L, HD = centroid distance = n x spacing."""
    spacing = np.array(CT_SPACING)
    a = np.zeros((12, 24, 24), bool)
    a[3:8, 5:15, 6:14] = True
    b = np.roll(a, shift, axis=axis)
    length = [5, 10, 8][axis]
    m = compare_masks(a, b, spacing)
    assert m.status == "ok"
    assert m.dice == pytest.approx(1 - shift / length, rel=1e-12)
    assert m.jaccard == pytest.approx((length - shift) / (length + shift), rel=1e-12)
    assert m.hausdorff_mm == pytest.approx(shift * spacing[axis], rel=1e-12)
    assert m.centroid_distance_mm == pytest.approx(shift * spacing[axis], rel=1e-12)
    assert m.volume_a_cc == pytest.approx(5 * 10 * 8 * spacing.prod() / 1000, rel=1e-12)
    assert m.volume_ratio == 1.0 and m.volume_difference_cc == 0.0
    # every surface point moves by exactly the shift: within that tolerance all agree
    assert m.surface_dice == (1.0 if shift * spacing[axis] <= m.tolerance_mm else m.surface_dice)
    assert compare_masks(a, b, spacing, tolerance_mm=shift * spacing[axis]).surface_dice == 1.0


def _sphere(shape, spacing, centre_mm, radius_mm):
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    z, y, x = k * spacing[0], j * spacing[1], i * spacing[2]
    return (z - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (
        x - centre_mm[2]
    ) ** 2 <= radius_mm**2


def _offset_sphere_truth(radius, d):
    """Continuum truths for two spheres of radius R whose centres are d apart.

    A point at polar cosine u (about the offset axis) of one sphere is at distance
    f(u) = |sqrt(R^2 + d^2 - 2 R d u) - R| from the other; u is uniform on [-1, 1] over
    the surface, so the area share within t is the length of the u-interval where
    f(u) <= t, over 2.
    """

    def f(u):
        return abs(math.sqrt(radius**2 + d**2 - 2 * radius * d * u) - radius)

    def share_within(t):
        lo = (d**2 - 2 * radius * t - t**2) / (2 * radius * d)
        hi = (d**2 + 2 * radius * t - t**2) / (2 * radius * d)
        return max(min(hi, 1.0) - max(lo, -1.0), 0.0) / 2

    mean = integrate.quad(f, -1, 1, points=[d / (2 * radius)])[0] / 2
    hd95 = optimize.brentq(lambda t: share_within(t) - 0.95, 1e-9, d)
    lens = math.pi * (4 * radius + d) * (2 * radius - d) ** 2 / 12
    dice_truth = lens / (4 / 3 * math.pi * radius**3)
    return {"hd": d, "hd95": hd95, "mean": mean, "share_within": share_within, "dice": dice_truth}


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 0.5), (1.5, 0.5, 0.5), CT_SPACING])
def test_offset_spheres_match_continuum_geometry(spacing):
    """Within the grid's discretisation.

    Surfel points lie on the voxel-corner lattice next to the true surface, so every
    lattice distance is within e = half a voxel diagonal of the continuum distance
    (DeepMind's point-to-point distances run ~half a voxel short).  Hence: HD, HD95 and
    the mean distances within e; the surface Dice at tolerance t between the continuum
    shares within t - e and t + e; Dice and volume within 1 % (voxel counts).
    """
    radius, d, tol = 12.0, 4.0, 2.0
    shape = tuple(int(40 / s) for s in spacing)
    centre = np.array([20.0, 20.0, 20.0])
    a = _sphere(shape, spacing, centre, radius)
    b = _sphere(shape, spacing, centre + [d * 0.6, d * 0.8, 0.0], radius)
    truth = _offset_sphere_truth(radius, d)
    m = compare_masks(a, b, spacing, tolerance_mm=tol)
    e = 0.5 * math.sqrt(sum(s * s for s in spacing))
    assert m.hausdorff_mm == pytest.approx(truth["hd"], abs=e)
    assert m.hd95_mm == pytest.approx(truth["hd95"], abs=e)
    for mean in (m.mean_a_to_b_mm, m.mean_b_to_a_mm, m.masd_mm, m.assd_mm):
        assert mean == pytest.approx(truth["mean"], abs=e)
    assert truth["share_within"](tol - e) <= m.surface_dice <= truth["share_within"](tol + e)
    assert m.dice == pytest.approx(truth["dice"], rel=0.01)
    assert m.centroid_distance_mm == pytest.approx(d, abs=0.05)
    assert m.volume_a_cc == pytest.approx(4 / 3 * math.pi * radius**3 / 1000, rel=0.01)


def test_concentric_spheres_every_distance_is_the_radius_gap():
    spacing = (1.0, 0.5, 0.5)
    shape = (40, 80, 80)
    centre = (20.0, 20.0, 20.0)
    a, b = _sphere(shape, spacing, centre, 10.0), _sphere(shape, spacing, centre, 13.0)
    m = compare_masks(a, b, spacing)
    e = 0.5 * math.sqrt(sum(s * s for s in spacing))  # see the offset-sphere test
    for value in (m.hausdorff_mm, m.hd95_mm, m.hd95_pooled_mm, m.masd_mm, m.assd_mm):
        assert value == pytest.approx(3.0, abs=e)
    assert m.dice == pytest.approx(2 * 1000 / (1000 + 13**3), rel=0.01)
    # the larger sphere carries (13/10)^2 of the area, weighting ASSD towards B->A
    assert m.surface_area_b_mm2 / m.surface_area_a_mm2 == pytest.approx(1.69, rel=0.03)


# ---------------------------------------------------------------- added path length
def _rect_path(w, h, sj, si):
    """Marching-squares contour of a w x h pixel rectangle: straight runs + 4 corner cuts."""
    return 2 * (w - 1) * si + 2 * (h - 1) * sj + 4 * 0.5 * math.hypot(sj, si)


def test_added_path_length_of_missing_slices_is_their_perimeter():
    spacing = (2.5, 0.8, 1.2)
    ref = np.zeros((8, 20, 20), bool)
    ref[1:7, 4:14, 3:11] = True  # 10 rows x 8 columns on 6 slices
    test = ref.copy()
    test[[2, 5]] = False
    apl = added_path_length(ref, test, spacing, tolerance_mm=0.0)
    perimeter = _rect_path(8, 10, 0.8, 1.2)
    expected = np.zeros(8)
    expected[[2, 5]] = perimeter
    np.testing.assert_allclose(apl.per_slice_mm, expected, rtol=1e-12, atol=1e-12)
    assert apl.slices_added == 2
    assert apl.reference_path_mm == pytest.approx(6 * perimeter, rel=1e-12)
    assert apl.percent == pytest.approx(100 * 2 / 6, rel=1e-12)
    # the reverse adds nothing: every test contour point is on the reference
    assert added_path_length(test, ref, spacing).total_mm == 0.0


def test_added_path_length_tolerance_is_inclusive_in_mm():
    """A contour moved by exactly 2 px (2.4 mm) is present at 2.4 mm, not at 2.39 mm."""
    spacing = (3.0, 1.0, 1.2)
    ref = np.zeros((3, 20, 24), bool)
    ref[1, 5:15, 5:15] = True
    test = np.roll(ref, 2, axis=2)
    assert added_path_length(ref, test, spacing, tolerance_mm=2.4).total_mm == 0.0
    partial = added_path_length(ref, test, spacing, tolerance_mm=2.39)
    assert 0 < partial.total_mm < partial.reference_path_mm
    assert compare_masks(ref, test, spacing, tolerance_mm=2.4).added_path_length_mm == 0.0


# ---------------------------------------------------------------- empty and invalid input
def test_empty_masks_are_flagged_never_perfect():
    a = np.zeros((5, 10, 10), bool)
    a[1:4, 2:8, 2:8] = True
    empty = np.zeros_like(a)
    m = compare_masks(a, empty, CT_SPACING)
    assert m.status == "b_empty"
    assert m.dice == 0.0 and m.jaccard == 0.0 and m.surface_dice == 0.0
    for value in (m.hausdorff_mm, m.hd95_mm, m.hd95_pooled_mm, m.masd_mm, m.assd_mm):
        assert value == math.inf
    assert math.isnan(m.centroid_distance_mm)
    assert m.added_path_length_percent == pytest.approx(100.0, rel=1e-12)
    assert compare_masks(empty, a, CT_SPACING).status == "a_empty"
    both = compare_masks(empty, empty, CT_SPACING)
    assert both.status == "both_empty"
    numbers = [v for k, v in both.as_dict().items() if k not in ("status", "tolerance_mm")]
    assert all(math.isnan(v) or v == 0.0 for v in numbers)  # volumes / areas 0, rest NaN
    assert math.isnan(both.dice) and math.isnan(both.hausdorff_mm) and math.isnan(both.surface_dice)
    missing = PairMetrics.missing("b_missing")
    assert missing.status == "b_missing" and all(
        math.isnan(getattr(missing, n)) for n in PairMetrics.metric_names()
    )


def test_invalid_input_raises_rtplan_errors():
    a = np.zeros((4, 5, 6), bool)
    with pytest.raises(GeometryError):
        compare_masks(a, np.zeros((4, 5, 7), bool), CT_SPACING)
    with pytest.raises(InputError):
        compare_masks(a, a.astype(np.uint8), CT_SPACING)
    with pytest.raises(GeometryError):
        compare_masks(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(InputError):
        surface_distances(a, a, CT_SPACING).hd_percentile_mm(101)
    with pytest.raises(InputError):
        surface_distances(a, a, CT_SPACING).surface_dice(-1.0)
    with pytest.raises(InputError):
        MaskSet({"x": a}, CT_SPACING).compare("x", "y")


def test_mask_set_pairs_equal_separate_comparisons():
    rng = np.random.default_rng(11)
    masks = {f"obs{i}": _blob(rng, (10, 20, 20)) for i in range(3)}
    pairs = MaskSet(masks, CT_SPACING).pairs(tolerance_mm=2.0)
    assert list(pairs) == [("obs0", "obs1"), ("obs0", "obs2"), ("obs1", "obs2")]
    for (a, b), m in pairs.items():
        assert m == compare_masks(masks[a], masks[b], CT_SPACING, tolerance_mm=2.0)
    assert volume_cc(masks["obs0"], CT_SPACING) == pairs["obs0", "obs1"].volume_a_cc
