"""Exact area moments of planar polygons on a rectangular lattice.

The DVH engine samples a structure cell by cell on a lattice aligned with the dose grid.
For every lattice cell it needs the exact area of the structure inside the cell and the
first and second moments of that area (centroid and covariance), so that the dose mean of
each cell is exact for (bi)linear dose and its spread is right.  These follow from
Green's theorem: for a closed polygon, ``iint f(x, y) dA = oint F(x, y) dy`` with
``dF/dx = f``.  Each polygon edge is split where it crosses lattice lines; every piece
then lies in one cell, contributes its own line integral to that cell, and a "cover"
term to every cell to its left in the same row (the running sum of the pieces' ``dy``,
as in scan-line font rasterisers).  Everything is vectorised over all edges of all planes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Two-point Gauss-Legendre rule on [0, 1]: exact for the cubic integrands used below.
_GAUSS_T = np.array([0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0)])


@dataclass(frozen=True)
class CellMoments:
    """Area moments of a polygon set in the lattice cells it covers.

    All quantities are in *lattice units*: a cell is the unit square, ``u`` and ``v`` are
    the local coordinates within it (``0 <= u, v <= 1``).  Cells crossed by an edge
    (*boundary cells*) are listed one by one; the cells between them (*interior
    cells*, wholly inside or wholly outside) come as runs along a row.  An interior cell
    inside the region is full: area 1, centroid (1/2, 1/2), variances 1/12, no
    covariance.

    Attributes
    ----------
    plane : numpy.ndarray of int
        Plane index of each boundary cell.
    row, col : numpy.ndarray of int
        Lattice row (``floor(Y)``) and column (``floor(X)``) of each boundary cell.
    area : numpy.ndarray
        Covered area (fraction of the cell, 0..1).
    mean_u, mean_v : numpy.ndarray
        Centroid of the covered part, local coordinates.
    var_u, var_v, cov_uv : numpy.ndarray
        Covariance of the local coordinates over the covered part.
    run_plane, run_row, run_col, run_length : numpy.ndarray of int
        Runs of interior cells: plane, row, first column and number of cells.
    run_area : numpy.ndarray
        Covered area of each cell of the run: 1 inside a valid region (other values
        mean overlapping contours).
    """

    plane: np.ndarray
    row: np.ndarray
    col: np.ndarray
    area: np.ndarray
    mean_u: np.ndarray
    mean_v: np.ndarray
    var_u: np.ndarray
    var_v: np.ndarray
    cov_uv: np.ndarray
    run_plane: np.ndarray
    run_row: np.ndarray
    run_col: np.ndarray
    run_length: np.ndarray
    run_area: np.ndarray


def split_edges(x0, y0, x1, y1):
    """Split line segments (lattice units) where they cross integer ``X`` or ``Y`` lines.

    Parameters
    ----------
    x0, y0, x1, y1 : numpy.ndarray
        Segment end points in lattice units.

    Returns
    -------
    edge : numpy.ndarray of int
        Index of the input segment each piece comes from.
    px0, py0, px1, py1 : numpy.ndarray
        End points of the pieces; each piece lies within one lattice cell.
    """
    n = len(x0)
    ts = [np.zeros(n), np.ones(n)]
    ids = [np.arange(n), np.arange(n)]
    for a, b in ((x0, x1), (y0, y1)):
        lo = np.minimum(a, b)
        hi = np.maximum(a, b)
        first = np.floor(lo) + 1.0
        count = np.maximum(np.ceil(hi) - first, 0).astype(np.int64)
        if count.sum() == 0:
            continue
        e = np.repeat(np.arange(n), count)
        starts = np.cumsum(count) - count
        m = first[e] + (np.arange(count.sum()) - starts[e])
        ts.append((m - a[e]) / (b[e] - a[e]))
        ids.append(e)
    t = np.concatenate(ts)
    e = np.concatenate(ids)
    order = np.lexsort((t, e))
    t = t[order]
    e = e[order]
    same = e[1:] == e[:-1]
    ta, tb, edge = t[:-1][same], t[1:][same], e[:-1][same]
    dx = x1 - x0
    dy = y1 - y0
    return (
        edge,
        x0[edge] + ta * dx[edge],
        y0[edge] + ta * dy[edge],
        x0[edge] + tb * dx[edge],
        y0[edge] + tb * dy[edge],
    )


def cell_moments(x0, y0, x1, y1, sign, plane, *, keep_tolerance: float = 1e-12) -> CellMoments:
    """Exact area, centroid and covariance of polygons in every lattice cell they cover.

    Parameters
    ----------
    x0, y0, x1, y1 : numpy.ndarray
        Directed polygon edges in lattice units (cell ``(row, col)`` is the unit square
        ``[col, col+1] x [row, row+1]``).  Each polygon must be closed (its edges form a
        loop); the edges of one plane together describe the region by signed winding.
    sign : numpy.ndarray
        Factor applied to each edge's contribution (+1 or -1).  A counter-clockwise
        polygon (in ``X``-right, ``Y``-up axes) with sign +1 adds its area; use -1 for a
        clockwise outline or for a hole, so that the summed weight is 1 inside the region.
    plane : numpy.ndarray of int
        Plane index of each edge; planes are independent.
    keep_tolerance : float
        Cells whose covered area is within this of 0 are dropped.

    Returns
    -------
    CellMoments
        The boundary cells and the runs of interior cells whose area is not within
        ``keep_tolerance`` of 0 (so overlapping polygons show up as areas above 1 or
        below 0).

    Notes
    -----
    With ``F_c(X) = clip(X - c, 0, 1)`` Green's theorem gives the area in column ``c`` of
    a row band as ``sum over edge pieces in that band of  int F_c(X) dY``; a piece in
    column ``c' < c`` adds nothing, one in ``c' > c`` adds ``dY`` (the cover term, summed
    from the right end of the row), and one in ``c`` adds ``int u dY``.  Only cells that
    hold pieces are stored one by one; the cells between two of them in a row are
    interior (their moments follow from the cover alone) and are returned as runs.  The
    first and second moments use ``F = u^2/2, u^3/3,
    u v, u v^2, u^2 v / 2`` in the same way.  The line integrals along a straight piece are
    evaluated with two-point Gauss-Legendre quadrature, exact for these cubics.

    Examples
    --------
    A unit square from (0.5, 0.5) to (1.5, 1.5) covers a quarter of four cells:

    >>> x = np.array([0.5, 1.5, 1.5, 0.5]); y = np.array([0.5, 0.5, 1.5, 1.5])
    >>> m = cell_moments(x, y, np.roll(x, -1), np.roll(y, -1), np.ones(4), np.zeros(4, int))
    >>> m.area.round(6).tolist()
    [0.25, 0.25, 0.25, 0.25]
    >>> m.mean_u.round(6).tolist()
    [0.75, 0.25, 0.75, 0.25]

    A 4 x 2 rectangle from (0.5, 0.5) has three full interior cells in row 1, columns
    1 to 3 (the other cells hold its edges):

    >>> x = np.array([0.5, 4.5, 4.5, 0.5]); y = np.array([0.5, 0.5, 2.5, 2.5])
    >>> m = cell_moments(x, y, np.roll(x, -1), np.roll(y, -1), np.ones(4), np.zeros(4, int))
    >>> m.run_row.tolist(), m.run_col.tolist(), m.run_length.tolist(), m.run_area.tolist()
    ([1], [1], [3], [1.0])
    """
    x0, y0, x1, y1 = (np.asarray(a, dtype=float) for a in (x0, y0, x1, y1))
    sign = np.asarray(sign, dtype=float)
    plane = np.asarray(plane, dtype=np.int64)
    empty = np.zeros(0)
    if len(x0) == 0:
        i0 = np.zeros(0, dtype=np.int64)
        return CellMoments(i0, i0, i0, *[empty] * 6, i0, i0, i0, i0, empty)

    edge, ax, ay, bx, by = split_edges(x0, y0, x1, y1)
    col = np.floor(0.5 * (ax + bx)).astype(np.int64)
    row = np.floor(0.5 * (ay + by)).astype(np.int64)
    pl = plane[edge]
    s = sign[edge]
    u0 = np.clip(ax - col, 0.0, 1.0)
    u1 = np.clip(bx - col, 0.0, 1.0)
    v0 = np.clip(ay - row, 0.0, 1.0)
    v1 = np.clip(by - row, 0.0, 1.0)
    dv = (v1 - v0) * s

    # Own-cell line integrals (Gauss-Legendre in the piece parameter).
    own = np.zeros((6, len(col)))
    for t in _GAUSS_T:
        u = u0 + t * (u1 - u0)
        v = v0 + t * (v1 - v0)
        own += 0.5 * np.stack([u, u * u / 2, u**3 / 3, u * v, u * v * v, u * u * v / 2])
    own *= dv
    # Cover terms for the cells to the left: int dY, int v dY, int v^2 dY.
    cover = np.stack([dv, dv * (v0 + v1) / 2, dv * (v0 * v0 + v0 * v1 + v1 * v1) / 3])

    # Boundary cells (those holding pieces), sorted by plane, row, column.
    width = int(col.max() - col.min()) + 3
    height = int(row.max() - row.min()) + 1
    c_off, r_off = col.min() - 1, row.min()
    key = (pl * height + (row - r_off)) * width + (col - c_off)
    bkey, inv = np.unique(key, return_inverse=True)
    n_b = len(bkey)
    own_sum = np.stack([np.bincount(inv, weights=w, minlength=n_b) for w in own])
    cov_sum = np.stack([np.bincount(inv, weights=w, minlength=n_b) for w in cover])
    row_key = bkey // width
    b_col = bkey % width + c_off
    # cover from the boundary cells to the right in the same row (suffix sums per row)
    new_row = np.concatenate([[True], row_key[1:] != row_key[:-1]])
    row_id = np.cumsum(new_row) - 1
    csum = np.cumsum(cov_sum[:, ::-1], axis=1)[:, ::-1]  # sum from each cell to the end
    row_last = np.flatnonzero(np.concatenate([new_row[1:], [True]]))
    after_row = np.concatenate([csum[:, row_last[:-1] + 1], np.zeros((3, 1))], axis=1)
    right = csum - cov_sum - after_row[:, row_id]  # strictly right of the cell, same row
    c0, c1, c2 = right
    b_area = own_sum[0] + c0
    b_moments = np.stack(
        [
            b_area,
            own_sum[1] + 0.5 * c0,
            own_sum[2] + c0 / 3.0,
            own_sum[3] + c1,
            own_sum[4] + c2,
            own_sum[5] + 0.5 * c1,
        ]
    )
    # Interior runs: cells between consecutive boundary cells of a row take the cover of
    # everything to their right, i.e. that of the next boundary cell plus its own pieces.
    same_row = ~new_row[1:]
    gap = np.where(same_row, b_col[1:] - b_col[:-1] - 1, 0)
    run_cover = (right + cov_sum)[0, 1:]
    run = np.flatnonzero((gap > 0) & (np.abs(run_cover) > keep_tolerance))
    run_plane, run_row = np.divmod(row_key[run], height)

    keep = np.flatnonzero(np.abs(b_area) > keep_tolerance)
    area, su, suu, sv, svv, suv = b_moments[:, keep]
    plane_of_cell, rows = np.divmod(row_key[keep], height)
    mu = su / area
    mv = sv / area
    return CellMoments(
        plane=plane_of_cell,
        row=rows + r_off,
        col=b_col[keep],
        area=area,
        mean_u=np.clip(mu, 0.0, 1.0),
        mean_v=np.clip(mv, 0.0, 1.0),
        var_u=np.maximum(suu / area - mu * mu, 0.0),
        var_v=np.maximum(svv / area - mv * mv, 0.0),
        cov_uv=suv / area - mu * mv,
        run_plane=run_plane,
        run_row=run_row + r_off,
        run_col=b_col[run] + 1,
        run_length=gap[run],
        run_area=run_cover[run],
    )
