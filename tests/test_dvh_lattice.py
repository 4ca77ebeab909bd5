"""Exact cell moments of polygons (rtplan.dvh.lattice) against brute force and closed form."""

import numpy as np
from matplotlib.path import Path

from rtplan.dvh.lattice import cell_moments, split_edges


def _edges(poly):
    x, y = poly[:, 0], poly[:, 1]
    return x, y, np.roll(x, -1), np.roll(y, -1)


def _all_cells(m):
    """(row, col, area) of every covered cell: boundary cells, then the runs expanded."""
    n = m.run_length
    rank = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return (
        np.concatenate([m.row, np.repeat(m.run_row, n)]),
        np.concatenate([m.col, np.repeat(m.run_col, n) + rank]),
        np.concatenate([m.area, np.repeat(m.run_area, n)]),
    )


def test_split_edges_pieces_stay_in_one_cell_and_cover_the_edge():
    # truth: pieces tile each edge; each piece lies in a single unit cell
    rng = np.random.default_rng(3)
    x0, y0, x1, y1 = (rng.uniform(-5, 5, 50) for _ in range(4))
    edge, ax, ay, bx, by = split_edges(x0, y0, x1, y1)
    length = np.bincount(edge, weights=np.hypot(bx - ax, by - ay), minlength=50)
    np.testing.assert_allclose(length, np.hypot(x1 - x0, y1 - y0), rtol=1e-12)
    lo_x = np.floor(np.minimum(ax, bx) + 1e-12)
    assert np.all(np.maximum(ax, bx) <= lo_x + 1 + 1e-9)


def test_cell_moments_match_brute_force_for_star_with_hole():
    # truth: 400 x 400 point sampling per cell (brute force), and the shoelace area
    rng = np.random.default_rng(1)
    n = 40
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 3 + 1.5 * rng.random(n)
    outer = np.c_[5.3 + r * np.cos(th), 4.7 + r * np.sin(th)][::-1]  # clockwise
    hole = np.c_[5.1 + np.cos(th), 4.9 + 0.8 * np.sin(th)]  # counter-clockwise
    xs, ys, xe, ye = (np.concatenate(a) for a in zip(_edges(outer), _edges(hole), strict=True))
    sign = np.concatenate([-np.ones(n), -np.ones(n)])  # outer CW -> +area; hole CCW -> -area
    m = cell_moments(xs, ys, xe, ye, sign, np.zeros(2 * n, int))

    def shoelace(p):
        return 0.5 * abs(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))

    rows, cols, areas = _all_cells(m)
    np.testing.assert_allclose(areas.sum(), shoelace(outer) - shoelace(hole), rtol=1e-12)
    assert len(m.run_length) > 0 and np.all(np.abs(m.run_area - 1) < 1e-12)
    g = (np.arange(400) + 0.5) / 400
    U, V = np.meshgrid(g, g)
    po, ph = Path(outer), Path(hole)
    n_b = len(m.area)
    for r, c in zip(rows[n_b:], cols[n_b:], strict=True):  # interior cells: wholly inside
        pts = np.c_[c + U[::8, ::8].ravel(), r + V[::8, ::8].ravel()]
        assert np.all(po.contains_points(pts) & ~ph.contains_points(pts))
    checked = 0
    for i in range(len(m.area)):
        pts = np.c_[m.col[i] + U.ravel(), m.row[i] + V.ravel()]
        ins = po.contains_points(pts) & ~ph.contains_points(pts)
        frac = ins.mean()
        if frac > 0.05:
            u, v = U.ravel()[ins], V.ravel()[ins]
            assert abs(u.mean() - m.mean_u[i]) < 5e-3
            assert abs(v.mean() - m.mean_v[i]) < 5e-3
            assert abs(u.var() - m.var_u[i]) < 3e-3
            assert abs(v.var() - m.var_v[i]) < 3e-3
            assert abs(np.mean((u - u.mean()) * (v - v.mean())) - m.cov_uv[i]) < 3e-3
            checked += 1
    assert checked > 20


def test_full_cell_has_uniform_moments():
    # truth: the unit square has centroid 1/2, variance 1/12, no covariance
    sq = np.array([[-1.0, -1.0], [3.0, -1.0], [3.0, 3.0], [-1.0, 3.0]])
    m = cell_moments(*_edges(sq), np.ones(4), np.zeros(4, int))
    inner = m.area > 1 - 1e-12
    rows, cols, areas = _all_cells(m)
    assert np.sum(areas > 1 - 1e-12) == 16 and np.sum(areas > 1e-12) == 16
    assert sorted(zip(rows[areas > 0.5], cols[areas > 0.5], strict=True)) == [
        (r, c) for r in range(-1, 3) for c in range(-1, 3)
    ]
    np.testing.assert_allclose(m.mean_u[inner], 0.5, atol=1e-12)
    np.testing.assert_allclose(m.var_v[inner], 1 / 12, atol=1e-12)
    np.testing.assert_allclose(m.cov_uv[inner], 0.0, atol=1e-12)


def test_interior_runs_of_a_large_square():
    # truth (hand count): a 40 x 40 square on the lattice lines; its left and bottom edges
    # lie in the cells of column 0 and row 0, its right and top edges in the (empty)
    # cells of column 40 and row 40, so rows 1..39 hold runs of 39 interior cells
    sq = np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 40.0], [0.0, 40.0]])
    m = cell_moments(*_edges(sq), np.ones(4), np.zeros(4, int))
    assert m.run_length.tolist() == [39] * 39
    assert sorted(m.run_row.tolist()) == list(range(1, 40))
    assert set(m.run_col.tolist()) == {1}
    rows, cols, areas = _all_cells(m)
    assert areas.sum() == 1600.0 and len(areas) == 1600
