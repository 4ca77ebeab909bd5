"""Exact planar polygon geometry: signed area, pixel coverage, nesting, self-intersection.

These are plain functions over ``(N, 2)`` vertex arrays.  A polygon is closed implicitly
(the last vertex connects to the first, as in DICOM ContourData).  Pixel coverage works in
*continuous pixel index* coordinates ``(u, v)``: pixel ``[r, c]`` is the unit square
``[c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]`` centred on integer ``(u, v) = (c, r)``.
"""

from __future__ import annotations

import numpy as np


def signed_area(poly: np.ndarray) -> float:
    """Signed area of a closed polygon (shoelace formula); positive when counter-clockwise.

    Examples
    --------
    >>> signed_area(np.array([[0, 0], [2, 0], [2, 1], [0, 1]]))
    2.0
    """
    x, y = np.asarray(poly, dtype=float).T
    x1, y1 = np.concatenate((x[1:], x[:1])), np.concatenate((y[1:], y[:1]))  # np.roll(., -1)
    return 0.5 * float(np.dot(x, y1) - np.dot(x1, y))


def nesting_depths(polys: list[np.ndarray]) -> np.ndarray:
    """How many of the other polygons contain each polygon (tested at its vertices).

    Contours of one plane do not cross, so a polygon lies wholly inside or outside each
    other; the majority vote over its vertices makes the test robust to vertices that
    touch another outline.  Used for the even-odd rule: a polygon of odd depth is a hole.
    """
    n = len(polys)
    depths = np.zeros(n, dtype=int)
    if n < 2:
        return depths
    polys = [np.asarray(p, dtype=float) for p in polys]
    for a in range(n):
        for b in range(n):
            if a != b and np.mean(points_inside(polys[a], polys[b])) > 0.5:
                depths[a] += 1
    return depths


def points_inside(points: np.ndarray, poly: np.ndarray, chunk: int = 1_000_000) -> np.ndarray:
    """Whether each point lies inside a closed polygon (even-odd rule: a horizontal ray
    from the point crosses the outline an odd number of times).

    A point on the outline may go either way.  Work is ``len(points) x len(poly)``, done
    in pieces of about ``chunk`` point-edge pairs.

    Examples
    --------
    >>> square = np.array([[0, 0], [2, 0], [2, 2], [0, 2]])
    >>> points_inside(np.array([[1, 1], [3, 1], [1, -0.5]]), square).tolist()
    [True, False, False]
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    x0, y0 = np.asarray(poly, dtype=float).T
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    dy = np.where(y1 == y0, 1.0, y1 - y0)  # horizontal edges are never crossed (below)
    slope = (x1 - x0) / dy
    out = np.empty(len(pts), dtype=bool)
    step = max(1, chunk // max(len(x0), 1))
    for i in range(0, len(pts), step):
        x, y = pts[i : i + step, :1], pts[i : i + step, 1:]
        crosses = (y0 > y) != (y1 > y)
        left = x < x0 + (y - y0) * slope
        out[i : i + step] = np.count_nonzero(crosses & left, axis=1) % 2 == 1
    return out


def even_odd_area(polys: list[np.ndarray]) -> float:
    """Area enclosed by nested polygons under the even-odd rule (holes subtract)."""
    depths = nesting_depths(polys)
    return float(sum((-1) ** d * abs(signed_area(p)) for p, d in zip(polys, depths, strict=True)))


def pixel_coverage(poly_uv: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Exact fraction of each pixel covered by a simple polygon.

    The coverage is the area of ``polygon ∩ pixel`` (pixel area 1), computed exactly by
    integrating the winding number over each pixel: every edge is split where it crosses
    a pixel row or column boundary; each piece adds its exact trapezoid area to the pixel
    it lies in and its full height to the pixels left of it in the same row (a running
    sum).  The result does not depend on the polygon's orientation.  A keyhole contour
    (an outline that enters a hole along a zero-width channel) is handled exactly, since
    the two sides of the channel cancel.

    Parameters
    ----------
    poly_uv : (N, 2) array
        Vertices in continuous pixel indices ``(u, v)`` = (column, row).
    shape : (int, int)
        ``(n_rows, n_columns)`` of the pixel array.

    Returns
    -------
    numpy.ndarray
        ``float64`` array of ``shape`` with values in ``[0, 1]``.

    Examples
    --------
    A 2 x 2 square from pixel centre (0, 0) to pixel centre (2, 2) covers pixel [1, 1]
    fully, the corner pixels by a quarter and the edge pixels by a half:

    >>> cov = pixel_coverage(np.array([[0, 0], [2, 0], [2, 2], [0, 2]]), (4, 4))
    >>> float(cov.sum()), float(cov[1, 1]), float(cov[0, 0]), float(cov[0, 1])
    (4.0, 1.0, 0.25, 0.5)
    """
    out = np.zeros(shape, dtype=float)
    p = np.asarray(poly_uv, dtype=float) + 0.5  # pixel [r, c] -> unit square [c, c+1] x [r, r+1]
    if len(p) < 3:
        return out
    lo = np.floor(p.min(axis=0)).astype(int)
    hi = np.ceil(p.max(axis=0)).astype(int)
    nu, nv = hi[0] - lo[0] + 1, hi[1] - lo[1] + 1
    q = p - lo  # local coordinates, all >= 0
    a, b = q, np.roll(q, -1, axis=0)
    d = b - a
    # parameters t in (0, 1) where each edge crosses an integer u or v line
    ts = [np.zeros(len(a)), np.ones(len(a))]
    ids = [np.arange(len(a)), np.arange(len(a))]
    for axis in (0, 1):
        s, e = a[:, axis], b[:, axis]
        first = np.floor(np.minimum(s, e)) + 1
        count = np.maximum(np.ceil(np.maximum(s, e)) - first, 0).astype(int)
        edge = np.repeat(np.arange(len(a)), count)
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        line = first[edge] + offset
        ts.append((line - s[edge]) / d[edge, axis])
        ids.append(edge)
    t = np.concatenate(ts)
    eid = np.concatenate(ids)
    order = np.lexsort((t, eid))
    t, eid = t[order], eid[order]
    same = eid[1:] == eid[:-1]
    t0, t1, e = t[:-1][same], t[1:][same], eid[:-1][same]
    pa = a[e] + t0[:, None] * d[e]
    pb = a[e] + t1[:, None] * d[e]
    dy = pb[:, 1] - pa[:, 1]
    keep = dy != 0
    pa, pb, dy = pa[keep], pb[keep], dy[keep]
    mid = 0.5 * (pa + pb)
    col = np.clip(np.floor(mid[:, 0]).astype(int), 0, nu - 1)
    row = np.clip(np.floor(mid[:, 1]).astype(int), 0, nv - 1)
    local = np.zeros((nv, nu + 1), dtype=float)
    # the piece's own pixel: area between the piece and the pixel's left edge
    np.add.at(local, (row, col), dy * (mid[:, 0] - col))
    # pixels to its left (column < col) are fully inside the piece's band: a running sum
    # from the right, seeded at col - 1
    band = np.zeros((nv, nu + 1), dtype=float)
    np.add.at(band, (row, col), dy)
    band = np.cumsum(band[:, ::-1], axis=1)[:, ::-1]
    cov = local[:, :nu] + band[:, 1:]
    cov = np.clip(cov * np.sign(signed_area(q)), 0.0, 1.0)
    # paste the local window into the output array
    r0, c0 = lo[1], lo[0]
    rs, cs = max(r0, 0), max(c0, 0)
    re, ce = min(r0 + nv, shape[0]), min(c0 + nu, shape[1])
    if rs < re and cs < ce:
        out[rs:re, cs:ce] = cov[rs - r0 : re - r0, cs - c0 : ce - c0]
    return out


def self_intersection(poly: np.ndarray, tolerance: float = 1e-9) -> tuple[int, int] | None:
    """Indices of two edges of a closed polygon that properly cross, or ``None``.

    Only proper crossings count (each edge's end points lie strictly on opposite sides of
    the other edge): edges that touch or overlap along a line, as the two sides of a
    keyhole channel do, are allowed.  Candidate pairs are the edges whose y ranges
    overlap (a sweep over edges sorted by their lowest y), so the cost stays near-linear
    for contours drawn on a planning system.  :func:`self_intersections` checks many
    polygons at once.
    """
    return self_intersections([poly], tolerance)[0]


def self_intersections(polys, tolerance: float = 1e-9) -> list[tuple[int, int] | None]:
    """:func:`self_intersection` of every polygon of ``polys``, in one vectorised sweep.

    The edges of all polygons are sorted by (polygon, lowest y) together, and each is
    paired with the later edges of its own polygon whose lowest y is at most its highest
    (complex keys ``polygon + 1j * y`` compare in that order, exactly); each polygon's
    answer is the first crossing pair in that order, as when checked alone.
    """
    ps = [np.asarray(p, dtype=float) for p in polys]
    out: list[tuple[int, int] | None] = [None] * len(ps)
    big = [k for k, p in enumerate(ps) if len(p) >= 4]
    if not big:
        return out
    sizes = np.array([len(ps[k]) for k in big])
    a = np.concatenate([ps[k] for k in big])
    poly = np.repeat(np.arange(len(big)), sizes)
    firsts = np.cumsum(sizes) - sizes
    start = np.repeat(firsts, sizes)
    local = np.arange(len(a)) - start
    b = a[start + (local + 1) % sizes[poly]]
    span = np.maximum.reduceat(a, firsts) - np.minimum.reduceat(a, firsts)
    scale = np.maximum(span.max(axis=1), 1e-12)
    tol = tolerance * scale * scale
    ax, ay, bx, by = a[:, 0], a[:, 1], b[:, 0], b[:, 1]
    xlo, xhi = np.minimum(ax, bx), np.maximum(ax, bx)
    ylo, yhi = np.minimum(ay, by), np.maximum(ay, by)
    order = np.lexsort((ylo, poly))
    keys = poly[order] + 1j * ylo[order]
    stop = np.searchsorted(keys, poly[order] + 1j * yhi[order], side="right")
    count = np.maximum(stop - np.arange(len(a)) - 1, 0)
    first = np.repeat(np.arange(len(a)), count)
    second = first + 1 + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    i, j = order[first], order[second]
    n = sizes[poly[i]]
    gap = np.abs(local[i] - local[j])
    keep = (gap > 1) & (gap != n - 1)
    keep &= (xlo[j] <= xhi[i]) & (xlo[i] <= xhi[j])  # y ranges overlap; x ranges too, or
    i, j = i[keep], j[keep]  # the edges cannot cross
    dx, dy = bx - ax, by - ay

    def orient(e, q):  # which side of edge e the points q lie on (times twice the area)
        return dx[e] * (q[:, 1] - ay[e]) - dy[e] * (q[:, 0] - ax[e])

    t = -tol[poly[i]]
    cross = (orient(i, a[j]) * orient(i, b[j]) < t) & (orient(j, a[i]) * orient(j, b[i]) < t)
    hits = np.flatnonzero(cross)
    found, at = np.unique(poly[i[hits]], return_index=True)
    for k, h in zip(found, hits[at], strict=True):
        out[big[k]] = tuple(sorted((int(local[i[h]]), int(local[j[h]]))))
    return out
