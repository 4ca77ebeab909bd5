"""Where the boundary of an expansion passes through each candidate voxel (compiled).

:func:`settle` is step 3-4 of the margin algorithm (:mod:`rtplan.volumes.margins`): given,
for each candidate voxel of the result, the gauge distance ``d0`` to its nearest occupied
voxel centre and that centre, it decides whether the voxel is full or empty, or places the
new boundary plane inside it.  It is the inner loop of every margin, so it is compiled with
numba (per voxel it visits up to 19 neighbours, or more in concave corners, and solves a
small projection problem; as numpy array expressions the same work made ~40 temporary
arrays per neighbour and was several times slower).  Compiled code is cached on disk
(:mod:`rtplan.volumes.compiled`): the first call after installing rtplan compiles it (about
3 s of CPU, once).

Conventions are those of :class:`rtplan.volumes.subvoxel.SubvoxelMask`: ``phi`` is the
signed distance (mm, negative inside) of a voxel centre from the voxel's boundary plane,
``-inf`` full, ``+inf`` empty; ``normal`` the outward unit normal (array-axis components,
mm space).  The margin shape is the octant-wise ellipsoid with semi-axes ``plus`` (towards
increasing index) and ``minus`` (mm) along the array axes; its gauge ``g(v) = |v_a / s_a|``
(``s_a`` the semi-axis on the side ``v_a`` points to) is the distance used throughout.
"""

from __future__ import annotations

import math

import numpy as np

from rtplan.volumes.compiled import helper, kernel

_SLACK = 0.1  # extra band (voxels) refined around the new boundary
_OPEN_COS = 0.9  # a plane runs on into a partial neighbour whose normal is within ~25 deg
_ZERO_MM = 1e-9  # offsets smaller than this (mm) count as zero
#: the 19 voxels around a centre: itself, 6 faces, 12 edges (offsets k, j, i)
_NEIGHBOURS = (
    np.array([o for o in np.ndindex(3, 3, 3) if sum(abs(v - 1) for v in o) <= 2], dtype=np.int64)
    - 1
)
_FACES = np.array(
    [[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.int64
)


def settle(
    flat, nearest, d0, nearest_all, phi, normal, out_phi, out_normal, h, plus, minus, rho,
    smallest_mm, degenerate,
) -> None:  # fmt: skip
    """Classify candidate voxels and place the boundary in those it crosses (in place).

    Parameters
    ----------
    flat : numpy.ndarray of int64, shape (M,)
        Flat indices of the candidate voxels.
    nearest : numpy.ndarray of int64, shape (M,)
        Flat index of each candidate's nearest occupied voxel centre (in the gauge).
    d0 : numpy.ndarray of float64, shape (M,)
        Gauge distance to that centre.
    nearest_all : numpy.ndarray of int64
        ``[k, j, i]``: the nearest occupied centre of every voxel (-1: none within reach).
    phi, normal : numpy.ndarray
        The region being expanded: float32 ``phi`` ``[k, j, i]`` and ``normal``
        ``(3, k, j, i)``, C-contiguous.  No occupied voxel may lie on the array border.
    out_phi, out_normal : numpy.ndarray
        Result arrays of the same shapes; the candidates' entries are written.
    h, plus, minus : numpy.ndarray of float64, shape (3,)
        Voxel size and the semi-axes (mm) along the array axes.
    rho : float
        Largest gauge distance between a voxel centre and a point of its box.
    smallest_mm : float
        Smallest positive semi-axis (mm).
    degenerate : bool
        Whether some semi-axis is zero (the margin shape is flat along an axis).

    Notes
    -----
    A voxel is full when ``d0 < 1 - rho_p`` (and its nearest centre is full, or no
    semi-axis is zero), empty when ``d0 > 1 + rho_p``; ``rho_p <= rho`` bounds how much
    the distance to the region differs from ``d0`` across half a voxel box, in the
    direction of the offset (first order: the gauge's gradient times the half box; second
    order: half the box's squared gauge over the distance).  Voxels near the boundary, or
    whose side is not certain, are refined: among the 19 voxels around the nearest centre
    (and, where the voxel may lie outside, around the distinct nearest centres of its six
    face neighbours: in a concave corner the nearest piece can belong to another face) the
    boundary piece standing nearest is chosen (a partial voxel's plane at its foot point,
    the box of a full voxel with an empty face neighbour); the exact gauge distance
    ``D`` to that piece (to ``plane ∩ box`` for a partial voxel, where the box is open
    towards full neighbours and towards partial neighbours whose plane runs on within
    ~25 degrees, closing the gaps between the planes of a smooth surface; or to the box of
    a full voxel) gives ``phi = (D - 1) * L``, ``L`` the extent of the margin shape along
    the new boundary normal.
    """
    floor = 1e-3 * float(h.min())  # semi-axes for ranking pieces (never zero)
    _settle_kernel(
        flat, nearest, d0, nearest_all.reshape(-1), phi.reshape(-1), normal.reshape(3, -1),
        out_phi.reshape(-1), out_normal.reshape(3, -1),
        np.array(phi.shape, dtype=np.int64), _strides(phi.shape), h, plus, minus,
        np.maximum(plus, floor), np.maximum(minus, floor), float(h.max()),
        float(rho), float(smallest_mm), bool(degenerate), _NEIGHBOURS, _FACES,
    )  # fmt: skip


def _strides(shape) -> np.ndarray:
    """Flat-index steps along the axes of a C-ordered array of ``shape``."""
    return np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)


@kernel
def _settle_kernel(
    flat, nearest, d0, nearest_all, phi, normal, out_phi, out_normal, shape, strides, h, plus,
    minus, plus_k, minus_k, h_max, rho, smallest_mm, degenerate, neighbours, faces,
):  # fmt: skip
    """:func:`settle` on flat arrays (``shape``: the grid's shape, ``strides`` its flat
    strides; ``plus_k``, ``minus_k``: the semi-axes for ranking pieces, never zero; ``h_max``:
    the largest voxel side)."""
    pt = np.empty(3, np.int64)
    q0 = np.empty(3, np.int64)
    qn = np.empty(3, np.int64)
    qs = np.empty(3, np.int64)
    seen = np.empty(6, np.int64)
    no_piece = np.int64(-1)  # (typed like a flat index: one compiled _nearest_piece)
    look_around = max(1.0 - 2.0 * rho, 0.0) ** 2  # squared gauge beyond which to look around
    v0 = np.empty(3)
    n0 = np.empty(3)
    p = np.empty(3)
    n_new = np.empty(3)
    # work space of the piece distance (lo, hi, c, n, x, rate, breakpoints): no allocation
    # per voxel
    work = (
        np.empty(3),
        np.empty(3),
        np.empty(3),
        np.empty(3),
        np.empty(3),
        np.empty(3),
        np.empty(7),
    )
    for m in range(flat.shape[0]):
        _unravel(flat[m], strides, pt)
        _unravel(nearest[m], strides, q0)
        # -- cheap classification from the offset to the nearest centre
        g0n2 = 0.0
        for a in range(3):
            v0[a] = (pt[a] - q0[a]) * h[a]
            s = plus[a] if v0[a] > 0 else minus[a]
            n0[a] = v0[a] / (s * s) if s > 0 else 0.0
            g0n2 += n0[a] * n0[a]
        g0n = math.sqrt(g0n2)
        d = d0[m]
        rho_p = 0.0  # |grad of the gauge| . half box, grad = g0 / d0
        for a in range(3):
            if d > 0:
                rho_p += abs(n0[a] / d) * h[a] / 2
            n0[a] = n0[a] / g0n if g0n > 0 else 0.0
        rho_p = min(rho_p + 0.5 * rho * rho / max(d - rho, 0.05), rho)
        len0 = _extent(n0, plus, minus)
        if len0 <= 0:
            len0 = smallest_mm
        ph0 = phi[nearest[m]]
        half_support = 0.5 * (abs(n0[0]) * h[0] + abs(n0[1]) * h[1] + abs(n0[2]) * h[2])
        if math.isfinite(ph0):
            dot = 0.0
            for a in range(3):
                dot += n0[a] * normal[a, nearest[m]]
            reach = -ph0 * dot
        else:
            reach = half_support
        inside = d < 1.0 - rho_p and (ph0 == -np.inf or not degenerate)
        outside = d > 1.0 + rho_p
        near_boundary = abs(d - reach / len0 - 1.0) * len0 <= half_support + _SLACK * h_max
        out = flat[m]
        for a in range(3):
            out_normal[a, out] = 0.0
        if not (near_boundary or not (inside or outside)):
            out_phi[out] = -np.inf if inside else np.inf
            continue
        # -- refine: the nearest boundary piece among the 19 voxels around the nearest
        # centre, and, where the point may lie outside, around the nearest centres of its
        # face neighbours too (in a concave corner of the region the nearest piece can
        # belong to another face than the nearest centre)
        for a in range(3):
            p[a] = pt[a] * h[a]
        best_key, best = _nearest_piece(
            nearest[m], q0, p, np.inf, no_piece, phi, normal, shape, strides, h, plus_k, minus_k,
            neighbours, faces, qn,
        )  # fmt: skip
        if best_key >= look_around:
            for t in range(6):
                g = _face_neighbour(out, pt, t, shape, strides, faces)
                seen[t] = -1 if g < 0 else nearest_all[g]
                if seen[t] < 0 or seen[t] == nearest[m] or _in(seen, t, seen[t]):
                    continue
                _unravel(seen[t], strides, qs)
                if _manhattan(qs, q0) <= 1:
                    continue  # its pieces are around q0 too (mostly searched already)
                best_key, best = _nearest_piece(
                    seen[t], qs, p, best_key, best, phi, normal, shape, strides, h, plus_k,
                    minus_k, neighbours, faces, qn,
                )  # fmt: skip
        if best < 0:
            out_phi[out] = np.inf
            continue
        _unravel(best, strides, qs)
        out_phi[out] = _piece_value(
            best, qs, p, phi, normal, shape, strides, faces, h, plus, minus, n_new, work
        )
        for a in range(3):
            out_normal[a, out] = n_new[a]


@helper
def _nearest_piece(
    seed, q, p, best_key, best, phi, normal, shape, strides, h, plus_k, minus_k, neighbours,
    faces, qn,
):  # fmt: skip
    """Among the 19 voxels around ``seed`` (index ``q``), the boundary piece nearest to the
    point ``p`` (mm) if nearer than ``best_key``: returns ``(key, flat index)``.

    The key is the squared gauge distance to a partial voxel's plane at its foot point (the
    voxel centre projected onto the plane), or to the box of a full voxel with an empty
    face neighbour.
    """
    for t in range(neighbours.shape[0]):
        f = seed
        for a in range(3):
            f += neighbours[t, a] * strides[a]
        ph = phi[f]
        if math.isfinite(ph):  # partial: the plane's foot point
            key = 0.0
            for a in range(3):
                v = p[a] - (q[a] + neighbours[t, a]) * h[a] + ph * normal[a, f]
                r = v / (plus_k[a] if v > 0 else minus_k[a])
                key += r * r
        elif ph == -np.inf and _exposed(
            f, _shifted(q, neighbours[t], qn), phi, shape, strides, faces
        ):  # full: its box
            key = 0.0
            for a in range(3):
                v = p[a] - (q[a] + neighbours[t, a]) * h[a]
                v -= min(max(v, -h[a] / 2), h[a] / 2)
                r = v / (plus_k[a] if v > 0 else minus_k[a])
                key += r * r
        else:
            continue
        if key < best_key:
            best_key = key
            best = f
    return best_key, best


@helper
def _manhattan(a, b):
    """Sum of the index differences between voxels ``a`` and ``b``."""
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2])


@helper
def _in(values, n, v):
    """Whether ``v`` is among ``values[:n]``."""
    for i in range(n):
        if values[i] == v:
            return True
    return False


@helper
def _unravel(index, strides, out):
    for a in range(3):
        out[a] = index // strides[a]
        index -= out[a] * strides[a]


@helper
def _shifted(q, offset, out):
    """``q + offset`` written to ``out`` (no allocation)."""
    for a in range(3):
        out[a] = q[a] + offset[a]
    return out


@helper
def _face_neighbour(f, q, t, shape, strides, faces):
    """Flat index of the face neighbour ``t`` of voxel ``f`` (index ``q``), or -1 when it
    lies outside the array."""
    g = f
    for a in range(3):
        c = q[a] + faces[t, a]
        if c < 0 or c >= shape[a]:
            return -1
        g += faces[t, a] * strides[a]
    return g


@helper
def _exposed(f, q, phi, shape, strides, faces):
    """A full voxel with an empty face neighbour (or on the edge of the array)."""
    for t in range(6):
        g = _face_neighbour(f, q, t, shape, strides, faces)
        if g < 0 or phi[g] == np.inf:
            return True
    return False


@helper
def _extent(n, plus, minus):
    """Extent (mm) of the margin shape along the unit vector ``n``: ``|s(n) * n|``."""
    total = 0.0
    for a in range(3):
        s = plus[a] if n[a] > 0 else minus[a]
        total += (s * n[a]) ** 2
    return math.sqrt(total)


@helper
def _piece_value(f, q, p, phi, normal, shape, strides, faces, h, plus, minus, n_new, work):
    """Signed distance (mm) of point ``p`` outside the expansion of voxel ``f``'s piece
    (``q`` its index);
    its normal goes to ``n_new``; ``work``: arrays to work in."""
    lo, hi, c, n, x, rate, bps = work
    n[:] = 0.0
    for a in range(3):
        c[a] = q[a] * h[a]
        lo[a] = c[a] - h[a] / 2
        hi[a] = c[a] + h[a] / 2
    ph = phi[f]
    part = math.isfinite(ph)
    delta = 0.0
    if part:
        delta = -ph
        for a in range(3):
            n[a] = normal[a, f]
        # open the box towards full neighbours and partial ones whose plane runs on
        for t in range(6):
            g = _face_neighbour(f, q, t, shape, strides, faces)
            if g < 0:
                continue
            ph_nb = phi[g]
            opened = ph_nb == -np.inf
            if math.isfinite(ph_nb):
                cos = n[0] * normal[0, g] + n[1] * normal[1, g] + n[2] * normal[2, g]
                opened = cos >= _OPEN_COS
            if opened:
                ax = t // 2
                if t % 2 == 0:
                    lo[ax] = -np.inf
                else:
                    hi[ax] = np.inf
        # the offset plane's signed distance, when its touching point lies on the piece
        e = -delta
        ln2 = 0.0
        for a in range(3):
            e += n[a] * (p[a] - c[a])
            s = plus[a] if n[a] > 0 else minus[a]
            ln2 += (s * n[a]) ** 2
        ln = math.sqrt(ln2)
        in_box = True
        on_piece = True
        for a in range(3):
            if abs(p[a] - c[a]) > h[a] / 2 + 1e-9:
                in_box = False
            s = plus[a] if n[a] > 0 else minus[a]
            touch = p[a] - (e / ln2 * s * s * n[a] if ln > 0 else e * n[a])
            if touch < lo[a] - 1e-9 or touch > hi[a] + 1e-9:
                on_piece = False
        if in_box or on_piece:
            for a in range(3):
                n_new[a] = n[a]
            return e - ln
    # otherwise the exact nearest point of the piece (plane within its bounds, or box)
    beta = delta
    for a in range(3):
        beta += n[a] * c[a]
    if not _nearest_in_box_halfspace(p, lo, hi, n, beta, plus, minus, x, rate, bps):
        for a in range(3):
            n_new[a] = n[a]
        return np.inf
    dist2 = 0.0
    gnorm2 = 0.0
    for a in range(3):
        v = p[a] - x[a]
        s = plus[a] if v > 0 else minus[a]
        if abs(v) > _ZERO_MM:
            dist2 += np.inf if s == 0 else (v / s) ** 2
        n_new[a] = v / (s * s) if s > 0 else 0.0
        gnorm2 += n_new[a] * n_new[a]
    gnorm = math.sqrt(gnorm2)
    for a in range(3):
        n_new[a] = n_new[a] / gnorm if gnorm > 0 else n[a]
    if not math.isfinite(dist2):
        return np.inf
    if dist2 == 0 and not part:
        return -np.inf  # inside a full voxel's box
    return (math.sqrt(dist2) - 1.0) * _extent(n_new, plus, minus)


@helper
def _nearest_in_box_halfspace(p, lo, hi, n, beta, plus, minus, x, rate, bps):
    """Gauge-nearest point ``x`` to ``p`` of ``{lo <= x <= hi} ∩ {n . x <= beta}``.

    The semi-axes are taken on the side of each axis the point lies on relative to the
    clamped point.  With weights ``1 / s_a^2`` the KKT conditions give
    ``x(lam) = clamp(p - lam * s^2 * n, lo, hi)``; ``n . x(lam)`` is piecewise linear and
    non-increasing in ``lam``, so the root of ``n . x(lam) = beta`` is found exactly from
    its breakpoints.  Bounds may be infinite; a zero semi-axis pins that coordinate.
    Returns False when the set is empty along the path (no feasible point).  ``rate`` (3)
    and ``bps`` (7) are work space.
    """
    f0 = 0.0
    rn = 0.0
    np_ = 0.0
    for a in range(3):
        x[a] = min(max(p[a], lo[a]), hi[a])
        f0 += n[a] * x[a]
        off = p[a] - x[a]
        s = plus[a] if off > 0 else (minus[a] if off < 0 else (plus[a] if n[a] > 0 else minus[a]))
        rate[a] = s * s * n[a]  # dx/dlam = -rate while a coordinate is free
        rn += rate[a] * n[a]
        np_ += n[a] * p[a]
    if f0 <= beta + 1e-9:
        return True  # the clamped point already lies in the half-space
    if rn > 0:  # the touching point on the unbounded plane, when within the bounds
        lam1 = (np_ - beta) / rn
        ok = True
        for a in range(3):
            if not lo[a] <= p[a] - lam1 * rate[a] <= hi[a]:
                ok = False
        if ok:
            for a in range(3):
                x[a] = p[a] - lam1 * rate[a]
            return True
    # breakpoints: coordinate a is free for lam in (t_hi, t_lo)
    bps[0] = 0.0
    for a in range(3):
        if rate[a] > 0:
            t_lo, t_hi = (p[a] - lo[a]) / rate[a], (p[a] - hi[a]) / rate[a]
        elif rate[a] < 0:
            t_lo, t_hi = (p[a] - hi[a]) / rate[a], (p[a] - lo[a]) / rate[a]
        else:
            t_lo, t_hi = np.inf, -np.inf
        bps[1 + a] = max(t_hi, 0.0)
        bps[4 + a] = max(t_lo, 0.0)
    for k in range(2, 7):  # insertion sort (bps[0] = 0 is the smallest)
        v = bps[k]
        i = k - 1
        while v < bps[i]:
            bps[i + 1] = bps[i]
            i -= 1
        bps[i + 1] = v
    lam_prev = bps[0]
    f_prev = _path_value(lam_prev, p, lo, hi, n, rate)
    if f_prev <= beta:
        lam_star = 0.0
    else:
        lam_star = np.nan
        for k in range(1, 7):
            lam_k = bps[k]
            if not math.isfinite(lam_k):
                break
            f_k = _path_value(lam_k, p, lo, hi, n, rate)
            if f_k <= beta:
                lam_star = lam_prev + (f_prev - beta) / (f_prev - f_k) * (lam_k - lam_prev)
                break
            lam_prev, f_prev = lam_k, f_k
        if math.isnan(lam_star):  # beyond the last breakpoint the free coordinates move on
            slope = 0.0
            for a in range(3):
                xr = min(max(p[a] - (lam_prev + 1.0) * rate[a], lo[a]), hi[a])
                if xr != lo[a] and xr != hi[a]:
                    slope -= n[a] * rate[a]
            if slope >= 0:
                return False
            lam_star = lam_prev + (f_prev - beta) / -slope
    if not math.isfinite(lam_star):
        return False
    for a in range(3):
        x[a] = min(max(p[a] - lam_star * rate[a], lo[a]), hi[a])
    return True


@helper
def _path_value(lam, p, lo, hi, n, rate):
    total = 0.0
    for a in range(3):
        total += n[a] * min(max(p[a] - lam * rate[a], lo[a]), hi[a])
    return total
