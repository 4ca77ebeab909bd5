"""Nearest occupied voxel centre under the margin's gauge: an exact distance transform.

The margin shape is the octant-wise ellipsoid with semi-axes ``plus[a]`` (towards
increasing index along array axis ``a``) and ``minus[a]`` (mm).  The squared gauge
distance from a point ``p`` to a seed ``s`` is a sum of per-axis costs,
``sum_a c_a(p_a - s_a)`` with ``c_a(t) = (t / plus[a])^2`` for ``t > 0`` and
``(t / minus[a])^2`` for ``t < 0``, so the minimum over all seeds separates into one 1-D
pass per axis, as in the Euclidean distance transform (Felzenszwalb & Huttenlocher 2012):
each pass replaces every line ``F`` by its lower envelope ``G(y) = min_x F(x) + c(y - x)``.

The costs ``c`` are convex translates of one function, so of two candidates ``x1 < x2``
the right one, once as good, stays so for every larger ``y`` (``c'`` is increasing); the
envelope is built with a stack of candidates and a binary search for where each takes
over, exactly on the voxel lattice (no intersection formula, so the same code serves
symmetric, asymmetric and one-sided margins).  A zero semi-axis is a very steep cost: an
offset that way is never within reach.  Points farther than ``reach`` (in gauge units)
are not needed by the margins: candidates beyond it are dropped, which keeps the work
near the boundary.

References
----------
Felzenszwalb PF, Huttenlocher DP (2012), Distance transforms of sampled functions,
Theory of Computing 8:415-428.
"""

from __future__ import annotations

import numpy as np

from rtplan.volumes.chunks import run_in_chunks
from rtplan.volumes.compiled import helper, kernel

_STEEP = 1.0e12  # 1 / s^2 (per mm^2) standing for a zero semi-axis


def nearest_seed(seeds: np.ndarray, spacing_mm, plus, minus, reach: float, threads: int = 1):
    """Gauge distance to the nearest seed centre and that seed's flat index.

    Parameters
    ----------
    seeds : numpy.ndarray of bool
        ``[k, j, i]`` occupied voxels.
    spacing_mm : sequence of 3 float
        Voxel size (mm) along the array axes.
    plus, minus : sequence of 3 float
        Semi-axes (mm, >= 0) of the margin shape towards increasing / decreasing index.
    reach : float
        Largest gauge distance wanted: beyond it ``distance`` is ``inf`` and ``nearest``
        is -1.
    threads : int
        Lines of each pass are shared among this many threads (the kernel releases the
        GIL).

    Returns
    -------
    distance : numpy.ndarray of float64
        Gauge distance (1 = on the margin surface) to the nearest seed centre.
    nearest : numpy.ndarray of int64
        Flat index of that seed.

    Examples
    --------
    >>> seeds = np.zeros((1, 1, 7), bool); seeds[0, 0, 3] = True
    >>> d, near = nearest_seed(seeds, (1, 1, 1), (1, 1, 2), (1, 1, 1), reach=1.5)
    >>> d[0, 0].tolist()
    [inf, inf, 1.0, 0.0, 0.5, 1.0, 1.5]
    >>> near[0, 0].tolist()
    [-1, -1, 3, 3, 3, 3, 3]
    """
    seeds = np.ascontiguousarray(seeds, dtype=bool)
    shape = seeds.shape
    h = np.asarray(spacing_mm, dtype=float)
    plus, minus = np.asarray(plus, dtype=float), np.asarray(minus, dtype=float)
    limit = float(reach) ** 2
    cost = np.where(seeds, 0.0, np.inf).reshape(-1)
    nearest = np.where(seeds.reshape(-1), np.arange(seeds.size, dtype=np.int64), -1)
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    # the contiguous axis first (its lines are cheapest to read), then the others
    for ax in (2, 1, 0):
        w_plus = _STEEP if plus[ax] <= 0 else 1.0 / plus[ax] ** 2
        w_minus = _STEEP if minus[ax] <= 0 else 1.0 / minus[ax] ** 2
        others = [a for a in range(3) if a != ax]

        def run(start, stop, ax=ax, others=others, w_plus=w_plus, w_minus=w_minus):
            _envelope_lines(
                cost, nearest, start, stop, shape[others[1]], strides[others[0]],
                strides[others[1]], strides[ax], shape[ax], h[ax] ** 2 * w_plus,
                h[ax] ** 2 * w_minus, limit,
            )  # fmt: skip

        run_in_chunks(run, seeds.size // shape[ax], threads=threads, min_chunk=64)
    cost = cost.reshape(shape)
    return np.sqrt(cost), nearest.reshape(shape)


@kernel
def _envelope_lines(
    cost, nearest, line0, line1, n_inner, stride_outer, stride_inner, stride, n, w_plus,
    w_minus, limit,
):  # fmt: skip
    """Lower envelope, in place, of lines ``line0 .. line1 - 1`` along one axis.

    ``w_plus`` / ``w_minus``: cost of one voxel step (in squared gauge units) for a point
    above / below its candidate.  Values above ``limit`` become ``inf``.
    """
    f = np.empty(n)
    src = np.empty(n, np.int64)
    site = np.empty(n, np.int64)
    start = np.empty(n + 1, np.int64)
    for line in range(line0, line1):
        base = (line // n_inner) * stride_outer + (line % n_inner) * stride_inner
        for y in range(n):
            f[y] = cost[base + y * stride]
            src[y] = nearest[base + y * stride]
        top = -1  # stack of candidates site[0..top], site[j] best from start[j]
        for x in range(n):
            if not f[x] <= limit:
                continue
            while top >= 0:
                s = site[top]
                if _value(f, s, start[top], w_plus, w_minus) >= _value(
                    f, x, start[top], w_plus, w_minus
                ):
                    top -= 1  # x is as good where s took over: s is never needed
                    continue
                # first y where x is as good as s (the difference only falls with y)
                lo, hi = start[top], n
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if _value(f, s, mid, w_plus, w_minus) >= _value(f, x, mid, w_plus, w_minus):
                        hi = mid
                    else:
                        lo = mid
                if hi < n:
                    top += 1
                    site[top] = x
                    start[top] = hi
                break
            if top < 0:
                top = 0
                site[0] = x
                start[0] = 0
        if top < 0:
            continue  # no candidate: the line is inf already
        start[top + 1] = n
        j = 0
        for y in range(n):
            while start[j + 1] <= y:
                j += 1
            v = _value(f, site[j], y, w_plus, w_minus)
            if v <= limit:
                cost[base + y * stride] = v
                nearest[base + y * stride] = src[site[j]]
            else:
                cost[base + y * stride] = np.inf
                nearest[base + y * stride] = -1


@helper
def _value(f, x, y, w_plus, w_minus):
    """Cost at ``y`` of the candidate at ``x``: ``f[x] + c(y - x)``."""
    t = y - x
    return f[x] + t * t * (w_plus if t > 0 else w_minus)
