"""Structure x dose -> DVH: exact partial-volume sampling with trilinear dose.

Conventions (every number of :func:`compute` depends on these)
--------------------------------------------------------------
Structure
    The slab convention and end caps of :mod:`rtplan.structure`: each closed planar
    contour on plane ``z`` stands for the slab ``Structure.slabs_mm(end_cap)`` (default
    ``[z - t/2, z + t/2]``, ``t`` the slice spacing; ``end_cap="none"`` ends a run of
    planes exactly on its first and last contour).  Contours of one plane combine by the
    even-odd rule (nesting parity).  Contours that cross each other are an error.
Sampling
    In-plane, a lattice of cells aligned with the dose grid's voxel centres (each dose
    cell split into ``n x n`` sub-cells; ``resolution_mm`` sets the sub-cell size, by
    default 1/40 of the structure's in-plane size, never coarser than the dose spacing).
    For every cell the *exact* area of the contour inside it, and the centroid and
    covariance of that area, come from Green's theorem (:mod:`rtplan.dvh.lattice`).
    Along z, each slab is cut at the dose-grid slice positions into pieces in which the
    dose is linear in z.
Dose
    Trilinear interpolation between dose voxel centres (:mod:`rtplan.dvh.dosefield`).
    Each (cell, slab) sample gets the exact mean of the trilinear dose over its covered
    volume, and a spread: the dose variance over the cell (exact for a dose linear within
    the cell) turned into a uniform interval of equal variance.  The DVH is thus exact in
    its mean for any trilinear dose and, for linear dose, has the exact variance per
    cell; metrics are exact inverses of its piecewise-linear cumulative curve.
Extremes
    ``Dmin`` and ``Dmax`` are the extremes of the trilinear dose over the structure,
    found at its boundary and corner points: contour vertices, the crossings of the
    contours with the dose grid lines and the midpoints between them, and the dose voxel
    centres inside the contours, each at the slab faces and at the dose-slice planes
    within the slab.
Coverage
    The dose grid covers the box of its voxel centres widened by half a voxel (see
    :mod:`rtplan.dvh.dosefield`).  Structure volume beyond it, or where the dose is NaN,
    is ``outside_dose_cc``; no dose is assumed there and dose metrics of such a structure
    are flagged (:mod:`rtplan.dvh.metrics`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.path import Path

from rtplan.dose import Dose
from rtplan.dvh.dosefield import AxialField, axial_field
from rtplan.dvh.histogram import DVH
from rtplan.dvh.lattice import cell_moments, split_edges
from rtplan.errors import ContourError, GeometryError, InputError
from rtplan.polygon import nesting_depths, signed_area
from rtplan.structure import Structure

#: Default in-plane sampling: this many sub-cells across the structure's largest plane.
CELLS_ACROSS = 40
#: Finest default sub-cell (mm).
MIN_RESOLUTION_MM = 0.01


def compute(
    structure: Structure,
    dose: Dose,
    *,
    end_cap: str = "slab",
    resolution_mm: float | None = None,
    prescription_gy: float | None = None,
    field: AxialField | None = None,
) -> DVH:
    """Dose-volume histogram of a structure (conventions in the module docstring).

    Parameters
    ----------
    structure : Structure
        A structure with closed planar (axial) contours.
    dose : Dose
        Dose in Gy on an axis-aligned axial grid, in the structure's frame of reference.
    end_cap : {"slab", "none"}
        End-cap convention (see :mod:`rtplan.structure`).
    resolution_mm : float, optional
        In-plane sub-cell size (mm); rounded down so a whole number of sub-cells fits a
        dose voxel.  Default: 1/40 of the square root of the largest plane's area,
        at most the dose spacing.
    prescription_gy : float, optional
        Stored on the DVH for ``%Rx`` metrics.
    field : AxialField, optional
        ``axial_field(dose)``, when the caller computes many DVHs on one dose.

    Returns
    -------
    DVH
        Samples in Gy and cc, exact ``min_gy``/``max_gy``, ``outside_dose_cc``, the
        conventions used, and flags.

    Raises
    ------
    GeometryError
        Frames of reference differ, or the dose grid is not axis-aligned and axial.
    ContourError
        The structure has no closed contours, or contours of one plane cross.

    Examples
    --------
    A 10 x 10 x 10 mm cube in a dose rising 1 Gy/mm along x (from 10 Gy at its left
    face) has mean 15 Gy and D50% 15 Gy:

    >>> from rtplan.grid import Grid
    >>> from rtplan.structure import Contour
    >>> sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    >>> cube = Structure("cube", tuple(Contour(np.c_[sq, np.full(4, z)]) for z in
    ...                  (0.5 + np.arange(10))), slice_spacing_mm=1.0)
    >>> g = Grid((16, 16, 16), (-3.0, -3.0, -3.0), (1.0, 1.0, 1.0))
    >>> x = g.index_to_world(np.indices(g.shape).reshape(3, -1).T)[:, 0].reshape(g.shape)
    >>> dvh = compute(cube, Dose(10.0 + x, g))
    >>> round(dvh.total_volume_cc, 6)
    1.0
    >>> round(dvh.mean_gy, 6), round(dvh.metric("D50%"), 6), round(dvh.max_gy, 6)
    (15.0, 15.0, 20.0)
    """
    if (
        structure.frame_of_reference_uid
        and dose.frame_of_reference_uid
        and structure.frame_of_reference_uid != dose.frame_of_reference_uid
    ):
        raise GeometryError(
            f"dose {dose.source or ''} is in frame of reference {dose.frame_of_reference_uid}, "
            f"the structure in {structure.frame_of_reference_uid}".replace("dose  is", "dose is"),
            path=structure.source or None,
            structure=structure.name,
        )
    planes = structure.planes
    if not planes:
        raise ContourError(
            "has no closed planar contours", path=structure.source or None, structure=structure.name
        )
    slabs = structure.slabs_mm(end_cap)
    f = axial_field(dose) if field is None else field
    polys = list(planes.values())

    # ---------------------------------------------------------------- lattice
    max_area = float(np.max(structure.plane_areas_mm2)) if len(polys) else 0.0
    if resolution_mm is None:
        target = max(np.sqrt(max(max_area, 0.0)) / CELLS_ACROSS, MIN_RESOLUTION_MM)
    else:
        if not resolution_mm > 0:
            raise InputError(f"resolution_mm must be positive, got {resolution_mm}")
        target = float(resolution_mm)
    nx = max(1, int(np.ceil(f.dx_mm / target - 1e-9)))
    ny = max(1, int(np.ceil(f.dy_mm / target - 1e-9)))
    hx, hy = f.dx_mm / nx, f.dy_mm / ny

    # ---------------------------------------------------------------- edges
    ext = f.extent_mm
    zlo = np.maximum(slabs[:, 0], ext[2, 0])
    zhi = np.minimum(slabs[:, 1], ext[2, 1])
    thick_in = np.maximum(zhi - zlo, 0.0)
    full_area = structure.plane_areas_mm2
    edges = []
    clipped_area = np.zeros(len(polys))
    for p, plane_polys in enumerate(polys):
        if thick_in[p] <= 0:
            continue
        depths = nesting_depths(plane_polys)
        for poly, depth in zip(plane_polys, depths, strict=True):
            a = signed_area(poly)
            if a == 0:
                continue
            c = _clip_to_box(np.asarray(poly, dtype=float), ext[0], ext[1])
            if len(c) < 3:
                continue
            sign = (-1.0) ** depth * np.sign(a)
            clipped_area[p] += sign * signed_area(c)
            X = (c[:, 0] - f.x0_mm) / hx
            Y = (c[:, 1] - f.y0_mm) / hy
            edges.append((X, Y, np.full(len(c), sign), np.full(len(c), p)))
    outside_mm3 = float(np.sum(full_area * (slabs[:, 1] - slabs[:, 0]) - clipped_area * thick_in))

    conventions = {
        "end_cap": end_cap,
        "slab_thickness_mm": structure.slab_thickness_mm,
        "resolution_mm": [hx, hy],
        "dose_interpolation": "trilinear",
        "holes": "even-odd",
        "histogram": "binless",
    }
    structure_volume_cc = float(np.sum(full_area * (slabs[:, 1] - slabs[:, 0]))) / 1000.0
    if not edges:
        return _empty_dvh(structure, structure_volume_cc, prescription_gy, conventions)
    X = np.concatenate([e[0] for e in edges])
    Y = np.concatenate([e[1] for e in edges])
    sign = np.concatenate([e[2] for e in edges])
    plane = np.concatenate([e[3] for e in edges]).astype(np.int64)
    nxt = _next_in_ring([len(e[0]) for e in edges])
    X1, Y1 = X[nxt], Y[nxt]

    # ---------------------------------------------------------------- cells
    cells = cell_moments(X, Y, X1, Y1, sign, plane)
    if np.any(cells.area > 1 + 1e-6) or np.any(cells.area < -1e-6):
        bad = int(cells.plane[np.argmax(np.abs(cells.area - 0.5))])
        raise ContourError(
            f"contours cross each other on plane z={list(planes)[bad]:.2f} mm",
            path=structure.source or None,
            structure=structure.name,
        )
    keep = cells.area > 1e-12
    samples = _cell_samples(f, cells, keep, nx, ny, hx, hy, zlo, zhi)
    dose_gy, volume_mm3, spread_gy, nan_mm3 = samples
    outside_mm3 += nan_mm3

    dmin, dmax = _extremes(f, structure, X, Y, X1, Y1, plane, cells, nx, ny, hx, hy, zlo, zhi)
    outside_cc = max(outside_mm3, 0.0) / 1000.0
    flags = []
    if outside_cc > 1e-6 * max(structure_volume_cc, 1e-3):
        flags.append(
            f"{outside_cc:.4g} cc of {structure_volume_cc:.4g} cc lie outside the dose grid"
        )
    return DVH(
        dose_gy=dose_gy,
        volume_cc=volume_mm3 / 1000.0,
        spread_gy=spread_gy,
        name=structure.name,
        min_gy=dmin,
        max_gy=dmax,
        outside_dose_cc=outside_cc,
        prescription_gy=prescription_gy,
        conventions=conventions,
        flags=tuple(flags),
    )


def _empty_dvh(structure, volume_cc, prescription_gy, conventions) -> DVH:
    """A DVH with no dosed part: the whole structure lies outside the dose grid."""
    return DVH(
        np.zeros(0),
        np.zeros(0),
        np.zeros(0),
        name=structure.name,
        min_gy=float("nan"),
        max_gy=float("nan"),
        outside_dose_cc=volume_cc,
        prescription_gy=prescription_gy,
        conventions=conventions,
        flags=(f"all {volume_cc:.4g} cc lie outside the dose grid",),
    )


def _next_in_ring(lengths) -> np.ndarray:
    """Index of the next vertex (cyclically within each polygon) of concatenated rings."""
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    idx = np.arange(lengths.sum()) + 1
    ends = starts + lengths
    idx[ends - 1] = starts
    return idx


def _clip_to_box(poly: np.ndarray, xr, yr) -> np.ndarray:
    """Sutherland-Hodgman clip of a polygon to the box ``xr x yr`` (vectorised per side).

    Concave polygons may come out with zero-width bridges along the box edge; their two
    sides cancel in every area integral, so the covered region is exact.
    """
    if (
        poly[:, 0].min() >= xr[0]
        and poly[:, 0].max() <= xr[1]
        and poly[:, 1].min() >= yr[0]
        and poly[:, 1].max() <= yr[1]
    ):
        return poly
    for axis, bound, keep_above in (
        (0, xr[0], True),
        (0, xr[1], False),
        (1, yr[0], True),
        (1, yr[1], False),
    ):
        if len(poly) == 0:
            break
        p = poly
        q = np.roll(poly, -1, axis=0)
        sp = p[:, axis] - bound if keep_above else bound - p[:, axis]
        sq = q[:, axis] - bound if keep_above else bound - q[:, axis]
        pin, qin = sp >= 0, sq >= 0
        denom = np.where(sp != sq, sp - sq, 1.0)
        cross = p + (sp / denom)[:, None] * (q - p)
        cross[:, axis] = bound
        emit_cross = pin != qin
        # per edge p->q: [crossing if in/out differs] then [q if q inside]
        pts = np.stack([cross, q], axis=1)
        mask = np.stack([emit_cross, qin], axis=1)
        poly = pts[mask]
    return poly


def _z_pieces(f: AxialField, zlo, zhi):
    """Cut each plane's slab at the dose-slice positions.

    Returns arrays over pieces: plane index, knot interval ``k``, the fractions
    ``(t_a, t_b)`` of the piece ends within that interval, and the piece thickness.
    """
    plane, k_all, ta, tb, th = [], [], [], [], []
    z = f.z_mm
    for p, (a, b) in enumerate(zip(zlo, zhi, strict=True)):
        if b <= a:
            continue
        inner = z[(z > a) & (z < b)]
        cuts = np.concatenate([[a], inner, [b]])
        lo, hi = cuts[:-1], cuts[1:]
        k = np.clip(np.searchsorted(z, 0.5 * (lo + hi), side="right") - 1, 0, len(z) - 2)
        gap = z[k + 1] - z[k]
        plane.append(np.full(len(lo), p))
        k_all.append(k)
        ta.append((lo - z[k]) / gap)
        tb.append((hi - z[k]) / gap)
        th.append(hi - lo)
    cat = np.concatenate
    return cat(plane).astype(np.int64), cat(k_all), cat(ta), cat(tb), cat(th)


def _cell_samples(f, cells, keep, nx, ny, hx, hy, zlo, zhi):
    """Mean dose, volume and spread of every (cell, slab) sample; volume with NaN dose."""
    cp = cells.plane[keep]
    area = cells.area[keep] * hx * hy
    ci = cells.col[keep] // nx
    cj = cells.row[keep] // ny
    U = (cells.col[keep] % nx + cells.mean_u[keep]) / nx
    V = (cells.row[keep] % ny + cells.mean_v[keep]) / ny
    var_u = cells.var_u[keep] / nx**2
    var_v = cells.var_v[keep] / ny**2
    cov = cells.cov_uv[keep] / (nx * ny)

    pp, pk, pta, ptb, pth = _z_pieces(f, zlo, zhi)
    # pair every cell with every piece of its plane (cells are sorted by plane)
    n_pieces = np.bincount(pp, minlength=len(zlo))
    first_piece = np.cumsum(n_pieces) - n_pieces
    reps = n_pieces[cp]
    cell = np.repeat(np.arange(len(cp)), reps)
    starts = np.cumsum(reps) - reps
    piece = first_piece[cp][cell] + (np.arange(reps.sum()) - starts[cell])

    v = f.values_gy
    k = pk[piece]
    i, j = ci[cell], cj[cell]
    Uc, Vc, cuv = U[cell], V[cell], cov[cell]
    means, grads = [], []
    for t in (pta[piece], ptb[piece]):
        corner = [
            (1 - t) * v[k, j + dj, i + di] + t * v[k + 1, j + dj, i + di]
            for dj in (0, 1)
            for di in (0, 1)
        ]
        f00, f10, f01, f11 = corner
        b, c, d = f10 - f00, f01 - f00, f11 - f10 - f01 + f00
        means.append(f00 + b * Uc + c * Vc + d * (Uc * Vc + cuv))
        grads.append((b + d * Vc, c + d * Uc))
    m = 0.5 * (means[0] + means[1])
    gu = 0.5 * (grads[0][0] + grads[1][0])
    gv = 0.5 * (grads[0][1] + grads[1][1])
    var = (
        gu * gu * var_u[cell]
        + gv * gv * var_v[cell]
        + 2 * gu * gv * cuv
        + (means[1] - means[0]) ** 2 / 12.0
    )
    w = area[cell] * pth[piece]
    bad = ~np.isfinite(m)
    nan_mm3 = float(w[bad].sum())
    w = np.where(bad, 0.0, w)
    m = np.where(bad, 0.0, m)
    var = np.where(bad, 0.0, np.maximum(var, 0.0))
    # merge the pieces of each cell: exact mixture mean and variance
    W = np.bincount(cell, weights=w, minlength=len(cp))
    ok = W > 0
    M = np.bincount(cell, weights=w * m, minlength=len(cp))[ok] / W[ok]
    S2 = np.bincount(cell, weights=w * (var + m * m), minlength=len(cp))[ok] / W[ok]
    spread = np.sqrt(3.0 * np.maximum(S2 - M * M, 0.0))
    return M, W[ok], spread, nan_mm3


def _extremes(f, structure, X, Y, X1, Y1, plane, cells, nx, ny, hx, hy, zlo, zhi):
    """Exact minimum and maximum of the trilinear dose over the structure (Gy)."""
    # boundary: edges split at dose grid lines (dose-cell units), ends and midpoints
    edge, ax, ay, bx, by = split_edges(X / nx, Y / ny, X1 / nx, Y1 / ny)
    e_plane = plane[edge]
    bx_all = np.concatenate([ax, 0.5 * (ax + bx)]) * nx
    by_all = np.concatenate([ay, 0.5 * (ay + by)]) * ny
    bp = np.concatenate([e_plane, e_plane])
    # dose voxel centres (lattice corners that are dose knots) inside the contours: the
    # corners of fully covered cells are inside; those of partly covered cells are tested
    full = cells.area >= 1 - 1e-9
    kx, ky, kp = [], [], []
    for group in (full, ~full):
        gx, gy, gp = [], [], []
        for dr in (0, 1):
            for dc in (0, 1):
                r, c = cells.row[group] + dr, cells.col[group] + dc
                on = (r % ny == 0) & (c % nx == 0)
                gx.append(c[on])
                gy.append(r[on])
                gp.append(cells.plane[group][on])
        key = np.unique(np.stack([np.concatenate(a) for a in (gp, gy, gx)], axis=1), axis=0)
        if group is not full and len(key):
            key = key[
                _inside_even_odd(
                    structure, key[:, 0], f.x0_mm + key[:, 2] * hx, f.y0_mm + key[:, 1] * hy
                )
            ]
        kp.append(key[:, 0])
        ky.append(key[:, 1])
        kx.append(key[:, 2])
    kx, ky, kp = (np.concatenate(a) for a in (kx, ky, kp))
    px = f.x0_mm + np.concatenate([bx_all, kx]) * hx
    py = f.y0_mm + np.concatenate([by_all, ky]) * hy
    pplane = np.concatenate([bp, kp]).astype(np.int64)
    # z levels per plane: slab faces and dose slices within the slab
    lv_plane, lv_z = [], []
    for p, (a, b) in enumerate(zip(zlo, zhi, strict=True)):
        if b <= a:
            continue
        zs = np.concatenate([[a, b], f.z_mm[(f.z_mm > a) & (f.z_mm < b)]])
        lv_plane.append(np.full(len(zs), p))
        lv_z.append(zs)
    lv_plane = np.concatenate(lv_plane)
    lv_z = np.concatenate(lv_z)
    order = np.argsort(lv_plane, kind="stable")
    lv_plane, lv_z = lv_plane[order], lv_z[order]
    n_lv = np.bincount(lv_plane, minlength=len(zlo))
    first = np.cumsum(n_lv) - n_lv
    reps = n_lv[pplane]
    pt = np.repeat(np.arange(len(pplane)), reps)
    starts = np.cumsum(reps) - reps
    lv = first[pplane][pt] + (np.arange(reps.sum()) - starts[pt])
    d = f.sample(px[pt], py[pt], lv_z[lv])
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return float("nan"), float("nan")
    return float(d.min()), float(d.max())


def _inside_even_odd(structure, plane_idx, x, y) -> np.ndarray:
    """Even-odd point-in-contours test of points on given planes (boundary counts inside)."""
    inside = np.zeros(len(x), dtype=bool)
    polys = list(structure.planes.values())
    for p in np.unique(plane_idx):
        sel = np.flatnonzero(plane_idx == p)
        pts = np.c_[x[sel], y[sel]]
        parity = np.zeros(len(sel), dtype=bool)
        for poly in polys[p]:
            parity ^= Path(np.asarray(poly, dtype=float)).contains_points(pts)
        inside[sel] = parity
    return inside
