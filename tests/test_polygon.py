"""Exact polygon geometry, checked against brute-force point sampling and closed forms."""

import numpy as np
import pytest
from matplotlib.path import Path

from rtplan.polygon import (
    even_odd_area,
    nesting_depths,
    pixel_coverage,
    points_inside,
    self_intersection,
    self_intersections,
    signed_area,
)


def _brute_coverage(poly, r, c, n=400):
    """Fraction of an n x n lattice of points inside pixel [r, c] that fall in the polygon."""
    g = (np.arange(n) + 0.5) / n - 0.5
    pts = np.stack(np.meshgrid(c + g, r + g), -1).reshape(-1, 2)
    return Path(poly).contains_points(pts).mean()


def _circle(cx, cy, r, n=300):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.c_[cx + r * np.cos(t), cy + r * np.sin(t)]


def test_signed_area_orientation():
    sq = np.array([[0, 0], [3, 0], [3, 2], [0, 2]], float)
    assert signed_area(sq) == 6.0
    assert signed_area(sq[::-1]) == -6.0


@pytest.mark.parametrize("reverse", [False, True])
def test_pixel_coverage_matches_brute_force(reverse):
    # truth: point sampling at 400 x 400 per pixel (error < 1/400 for a straight-ish edge)
    poly = _circle(10.2, 11.7, 7.3)
    if reverse:
        poly = poly[::-1]
    cov = pixel_coverage(poly, (25, 25))
    assert cov.sum() == pytest.approx(abs(signed_area(poly)), rel=1e-12)
    rng = np.random.default_rng(1)
    edge = np.argwhere((cov > 0.01) & (cov < 0.99))
    for r, c in edge[rng.choice(len(edge), 8, replace=False)]:
        assert cov[r, c] == pytest.approx(_brute_coverage(poly, r, c), abs=3e-3)


def test_pixel_coverage_clips_to_array():
    # a square hanging over the array's corner keeps only the part inside the array
    sq = np.array([[-3.5, -3.5], [1.5, -3.5], [1.5, 1.5], [-3.5, 1.5]], float)
    cov = pixel_coverage(sq, (10, 10))
    assert cov.sum() == pytest.approx(4.0)  # pixels [0..1] x [0..1], each fully covered


def test_keyhole_equals_outer_minus_hole():
    # 10 x 10 square with a 4 x 4 hole reached through a zero-width channel
    kh = np.array(
        [
            [0, 0],
            [10, 0],
            [10, 10],
            [0, 10],
            [0, 5],
            [3, 5],
            [3, 7],
            [7, 7],
            [7, 3],
            [3, 3],
            [3, 5],
            [0, 5],
        ],
        float,
    )
    outer = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    hole = np.array([[3, 3], [7, 3], [7, 7], [3, 7]], float)
    expected = pixel_coverage(outer, (12, 12)) - pixel_coverage(hole, (12, 12))
    np.testing.assert_allclose(pixel_coverage(kh, (12, 12)), expected, atol=1e-12)
    assert self_intersection(kh) is None


def test_even_odd_nesting():
    outer, hole, island = _circle(0, 0, 10), _circle(0, 0, 5), _circle(0, 0, 2)
    assert list(nesting_depths([outer, hole, island])) == [0, 1, 2]
    expected = abs(signed_area(outer)) - abs(signed_area(hole)) + abs(signed_area(island))
    assert even_odd_area([island, outer, hole]) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_points_inside_matches_matplotlib(seed):
    """Even-odd point-in-polygon against matplotlib's Path.contains_points (independent
    implementation) on a random star-shaped polygon and random points, in small chunks too."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 2 * np.pi, 40))
    r = rng.uniform(2, 10, 40)
    star = np.c_[r * np.cos(t), r * np.sin(t)]
    pts = rng.uniform(-11, 11, (5000, 2))
    truth = Path(star).contains_points(pts)
    assert 500 < truth.sum() < 4500
    np.testing.assert_array_equal(points_inside(pts, star), truth)
    np.testing.assert_array_equal(points_inside(pts, star, chunk=7), truth)


def test_self_intersection_found_and_matches_brute_force():
    bow = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], float)
    assert self_intersection(bow) == (0, 2)
    assert self_intersection(_circle(0, 0, 5, 2000)) is None

    def brute(p):
        n = len(p)
        a, b = p, np.roll(p, -1, 0)

        def o(p0, p1, q):
            return (p1[0] - p0[0]) * (q[1] - p0[1]) - (p1[1] - p0[1]) * (q[0] - p0[0])

        return any(
            o(a[i], b[i], a[j]) * o(a[i], b[i], b[j]) < 0
            and o(a[j], b[j], a[i]) * o(a[j], b[j], b[i]) < 0
            for i in range(n)
            for j in range(i + 2, n)
            if not (i == 0 and j == n - 1)
        )

    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.random((rng.integers(4, 9), 2))
        assert brute(p) == (self_intersection(p) is not None)


def test_self_intersections_of_many_polygons_at_once_match_each_alone():
    # truth: the brute-force check above, polygon by polygon; the batched sweep pairs each
    # edge only with edges of its own polygon and reports the same first crossing
    rng = np.random.default_rng(5)
    polys = [rng.random((rng.integers(3, 12), 2)) * rng.choice([1e-3, 1.0, 100.0])
             for _ in range(300)]  # fmt: skip
    polys += [_circle(0, 0, 5, 400), np.array([[0, 0], [2, 2], [2, 0], [0, 2]], float)]
    alone = [self_intersection(p) for p in polys]
    assert 50 < sum(h is not None for h in alone) < 300
    assert self_intersections(polys) == alone
    assert self_intersections(polys[::-1]) == alone[::-1]
    assert self_intersections([]) == []
