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
    the local coordinates within it (``0 <= u, v <= 1``).

    Attributes
    ----------
    plane : numpy.ndarray of int
        Plane index of each covered cell.
    row, col : numpy.ndarray of int
        Lattice row (``floor(Y)``) and column (``floor(X)``) of each cell.
    area : numpy.ndarray
        Covered area (fraction of the cell, 0..1).
    mean_u, mean_v : numpy.ndarray
        Centroid of the covered part, local coordinates.
    var_u, var_v, cov_uv : numpy.ndarray
        Covariance of the local coordinates over the covered part.
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
        Cells with covered area at or below this fraction are dropped.

    Returns
    -------
    CellMoments
        One entry per covered cell, sorted by plane, row, column.

    Notes
    -----
    With ``F_c(X) = clip(X - c, 0, 1)`` Green's theorem gives the area in column ``c`` of
    a row band as ``sum over edge pieces in that band of  int F_c(X) dY``; a piece in
    column ``c' < c`` adds nothing, one in ``c' > c`` adds ``dY`` (the cover term, summed
    from the right end of the row), and one in ``c`` adds ``int u dY``.  The first and second moments use ``F = u^2/2, u^3/3,
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
    """
    x0, y0, x1, y1 = (np.asarray(a, dtype=float) for a in (x0, y0, x1, y1))
    sign = np.asarray(sign, dtype=float)
    plane = np.asarray(plane, dtype=np.int64)
    empty = np.zeros(0)
    if len(x0) == 0:
        i0 = np.zeros(0, dtype=np.int64)
        return CellMoments(i0, i0, i0, empty, empty, empty, empty, empty, empty)

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
    cov0 = dv
    cov1 = dv * (v0 + v1) / 2
    cov2 = dv * (v0 * v0 + v0 * v1 + v1 * v1) / 3

    # Per-plane bounding boxes of the pieces -> flat cell index.
    n_planes = int(pl.max()) + 1
    big = np.iinfo(np.int64).max
    rmin = np.full(n_planes, big)
    cmin = np.full(n_planes, big)
    rmax = np.full(n_planes, -big)
    cmax = np.full(n_planes, -big)
    np.minimum.at(rmin, pl, row)
    np.minimum.at(cmin, pl, col)
    np.maximum.at(rmax, pl, row)
    np.maximum.at(cmax, pl, col)
    present = rmax >= rmin
    rmin = np.where(present, rmin, 0)
    cmin = np.where(present, cmin, 0)
    rows = np.where(present, rmax - rmin + 1, 0)
    width = np.where(present, cmax - cmin + 1, 0)
    size = rows * width
    offset = np.cumsum(size) - size
    total = int(size.sum())

    flat = offset[pl] + (row - rmin[pl]) * width[pl] + (col - cmin[pl])
    acc = np.stack([np.bincount(flat, weights=w, minlength=total) for w in own])
    spill = col > cmin[pl]
    fc = flat[spill] - 1
    covers = np.stack(
        [np.bincount(fc, weights=w[spill], minlength=total) for w in (cov0, cov1, cov2)]
    )
    # Segmented cumulative sum along each row, from its right end.
    row_len = np.repeat(width, rows)
    row_end = np.cumsum(row_len) - 1
    row_of = np.repeat(np.arange(len(row_len)), row_len)
    csum = np.cumsum(covers, axis=1)
    covers = csum[:, row_end][:, row_of] - csum + covers

    c0, c1, c2 = covers
    area = acc[0] + c0
    keep = np.flatnonzero(area > keep_tolerance)
    area = area[keep]
    su = acc[1][keep] + 0.5 * c0[keep]
    suu = acc[2][keep] + c0[keep] / 3.0
    sv = acc[3][keep] + c1[keep]
    svv = acc[4][keep] + c2[keep]
    suv = acc[5][keep] + 0.5 * c1[keep]
    mu = su / area
    mv = sv / area

    plane_of_cell = np.repeat(np.arange(n_planes), size)[keep]
    local = keep - offset[plane_of_cell]
    w = width[plane_of_cell]
    return CellMoments(
        plane=plane_of_cell,
        row=local // w + rmin[plane_of_cell],
        col=local % w + cmin[plane_of_cell],
        area=area,
        mean_u=np.clip(mu, 0.0, 1.0),
        mean_v=np.clip(mv, 0.0, 1.0),
        var_u=np.maximum(suu / area - mu * mu, 0.0),
        var_v=np.maximum(svv / area - mv * mv, 0.0),
        cov_uv=suv / area - mu * mv,
    )
