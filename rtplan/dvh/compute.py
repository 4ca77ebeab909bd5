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
from rtplan.structure import Contour, Structure

#: Metrics reported when none are asked for.
DEFAULT_METRICS = ("Dmean", "Dmin", "Dmax", "D0.03cc", "D98%", "D95%", "D50%", "D2%")
#: Default in-plane sampling: this many sub-cells across the structure's largest plane.
CELLS_ACROSS = 40
#: Cells per chunk of planes (bounds the size of temporary arrays).
CHUNK_CELLS = 150_000
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
    # ---------------------------------------------------------------- cells, by chunks
    # of planes holding about CHUNK_CELLS cells each, so temporaries stay small
    per_plane = np.abs(full_area) / (hx * hy) + 1.0
    chunk_of_plane = np.floor(np.cumsum(per_plane) / CHUNK_CELLS).astype(int)
    parts, lo_in, hi_in = [], np.inf, -np.inf
    for chunk in np.unique(chunk_of_plane[[e[3][0] for e in edges]]):
        sel = [e for e in edges if chunk_of_plane[e[3][0]] == chunk]
        in_chunk = chunk_of_plane == chunk
        czhi = np.where(in_chunk, zhi, zlo)  # planes of other chunks have no levels
        X = np.concatenate([e[0] for e in sel])
        Y = np.concatenate([e[1] for e in sel])
        sign = np.concatenate([e[2] for e in sel])
        plane = np.concatenate([e[3] for e in sel]).astype(np.int64)
        nxt = _next_in_ring([len(e[0]) for e in sel])
        X1, Y1 = X[nxt], Y[nxt]
        cells = cell_moments(X, Y, X1, Y1, sign, plane)
        if np.any(cells.area > 1 + 1e-6) or np.any(cells.area < -1e-6):
            bad = int(cells.plane[np.argmax(np.abs(cells.area - 0.5))])
            raise ContourError(
                f"contours cross each other on plane z={list(planes)[bad]:.2f} mm",
                path=structure.source or None,
                structure=structure.name,
            )
        mean, vol, spread, nan_mm3, (lo, hi) = _cell_samples(
            f, structure, cells, nx, ny, hx, hy, zlo, czhi
        )
        outside_mm3 += nan_mm3
        lo_edge, hi_edge = _extremes(f, X, Y, X1, Y1, plane, nx, ny, hx, hy, zlo, czhi)
        lo_in, hi_in = min(lo_in, lo, lo_edge), max(hi_in, hi, hi_edge)
        parts.append((mean, vol, spread))
    dose_gy, volume_mm3, spread_gy = (np.concatenate(a) for a in zip(*parts, strict=True))
    dmin, dmax = lo_in, hi_in
    if not np.isfinite(dmin):
        dmin = dmax = float("nan")
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


def dose_grid_structure(dose: Dose) -> Structure:
    """The box covered by a dose grid (see :mod:`rtplan.dvh.dosefield`) as a structure.

    One rectangle on every dose slice, slab = the dose slice spacing; used for isodose
    volumes over the whole dose grid (e.g. Paddick's PIV when there is no EXTERNAL).
    Needs evenly spaced dose slices.
    """
    f = axial_field(dose)
    if not dose.grid.is_uniform:
        raise InputError(
            "isodose volumes over the dose grid need evenly spaced dose slices",
            path=dose.source or None,
        )
    (x0, x1), (y0, y1), _ = f.extent_mm
    rect = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    contours = tuple(Contour(np.c_[rect, np.full(4, z)]) for z in f.z_mm[1:-1])
    return Structure(
        "dose grid",
        contours,
        frame_of_reference_uid=dose.frame_of_reference_uid,
        source=dose.source,
        slice_spacing_mm=dose.grid.spacing_mm[0],
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


def _levels(f: AxialField, zlo, zhi):
    """z levels of every plane's slab: its faces and the dose slices strictly inside.

    Returns ``(plane, z)`` arrays, grouped by plane in increasing z.
    """
    plane, z = [], []
    for p, (a, b) in enumerate(zip(zlo, zhi, strict=True)):
        if b <= a:
            continue
        zs = np.concatenate([[a], f.z_mm[(f.z_mm > a) & (f.z_mm < b)], [b]])
        plane.append(np.full(len(zs), p))
        z.append(zs)
    return np.concatenate(plane).astype(np.int64), np.concatenate(z)


def _level_doses(f: AxialField, z, crop):
    """Dose on the dose-grid knots of the ``crop`` window at each level ``z`` (linear in z)."""
    (j0, j1), (i0, i1) = crop
    nz = len(f.z_mm)
    k = np.clip(np.searchsorted(f.z_mm, z, side="right") - 1, 0, nz - 2)
    a = np.clip((z - f.z_mm[k]) / (f.z_mm[k + 1] - f.z_mm[k]), 0.0, 1.0)[:, None, None]
    v = f.values_gy
    return (1 - a) * v[k, j0:j1, i0:i1] + a * v[k + 1, j0:j1, i0:i1]


def _cell_samples(f, structure, cells, nx, ny, hx, hy, zlo, zhi):
    """Mean dose, volume and spread of every (cell, slab) sample, the volume whose dose is
    NaN, and the dose extremes over the dose voxel centres inside the structure.

    Along z the trilinear dose is averaged over the slab exactly: the slab mean on the
    knots, ``M``, is a weighted sum of the level doses, and the mean over a cell of the
    bilinear interpolant of ``M`` is exact given the cell's area moments.  The spread
    adds the in-plane variance (mean gradient of ``M`` and the cell covariance) and the
    z variance over the slab (that of a dose linear between the slab faces, bilinearly
    interpolated from the knots).
    """
    ci = cells.col // nx
    cj = cells.row // ny
    crop = ((int(cj.min()), int(cj.max()) + 2), (int(ci.min()), int(ci.max()) + 2))
    cy, cx = crop[0][1] - crop[0][0], crop[1][1] - crop[1][0]
    lv_plane, lv_z = _levels(f, zlo, zhi)
    L = _level_doses(f, lv_z, crop)
    # slab mean on the knots: each level weighs half the pieces on either side of it
    first = np.flatnonzero(np.concatenate([[True], lv_plane[1:] != lv_plane[:-1]]))
    last = np.concatenate([first[1:], [len(lv_plane)]]) - 1
    planes_with = lv_plane[first]
    gap = np.diff(lv_z)
    gap[last[:-1]] = 0.0  # no piece between the last level of a plane and the next plane
    weight = 0.5 * (np.concatenate([[0.0], gap]) + np.concatenate([gap, [0.0]]))
    thick = (lv_z[last] - lv_z[first])[:, None, None]
    mean_k = np.add.reduceat(L * weight[:, None, None], first, axis=0) / thick
    # z variance: that of a dose linear between the slab faces
    zvar_k = (L[last] - L[first]) ** 2 / 12.0
    row_of_plane = np.full(len(zlo), -1)
    row_of_plane[planes_with] = np.arange(len(planes_with))

    pr = row_of_plane[cells.plane]
    ok = pr >= 0
    U = (cells.col % nx + cells.mean_u) / nx
    V = (cells.row % ny + cells.mean_v) / ny
    cov = cells.cov_uv / (nx * ny)
    base = (pr * cy + (cj - crop[0][0])) * cx + (ci - crop[1][0])
    base = np.where(ok, base, 0)
    mflat, qflat = mean_k.ravel(), zvar_k.ravel()
    f00, f10, f01, f11 = (mflat[base + dj * cx + di] for dj in (0, 1) for di in (0, 1))
    b, c, d = f10 - f00, f01 - f00, f11 - f10 - f01 + f00
    mean = f00 + b * U + c * V + d * (U * V + cov)
    gu, gv = b + d * V, c + d * U
    q00, q10, q01, q11 = (qflat[base + dj * cx + di] for dj in (0, 1) for di in (0, 1))
    zvar = (1 - U) * (1 - V) * q00 + U * (1 - V) * q10 + (1 - U) * V * q01 + U * V * q11
    var = gu * gu * cells.var_u / nx**2 + gv * gv * cells.var_v / ny**2 + 2 * gu * gv * cov + zvar
    t_in = np.where(ok, thick[np.maximum(pr, 0), 0, 0], 0.0)
    w = cells.area * hx * hy * t_in
    bad = ~np.isfinite(mean) & ok
    nan_mm3 = float(w[bad].sum())
    good = ok & ~bad
    spread = np.sqrt(3.0 * np.maximum(var[good], 0.0))

    # dose voxel centres inside: corners of fully covered cells, and corners of partly
    # covered cells that pass an even-odd point-in-contour test
    inside = np.zeros((len(planes_with), cy, cx), dtype=bool)
    full = cells.area >= 1 - 1e-9
    test = []
    for dr in (0, 1):
        for dc in (0, 1):
            r, cc = cells.row + dr, cells.col + dc
            on = (r % ny == 0) & (cc % nx == 0) & ok
            kj, ki = r // ny - crop[0][0], cc // nx - crop[1][0]
            sel = on & full
            inside[pr[sel], kj[sel], ki[sel]] = True
            sel = on & ~full
            test.append(np.stack([pr[sel], kj[sel], ki[sel]], axis=1))
    cand = np.unique(np.concatenate(test) @ np.array([cy * cx, cx, 1]))
    cand = np.stack([cand // (cy * cx), cand // cx % cy, cand % cx], axis=1)
    if len(cand):
        x = f.x0_mm + (cand[:, 2] + crop[1][0]) * f.dx_mm
        y = f.y0_mm + (cand[:, 1] + crop[0][0]) * f.dy_mm
        hit = _inside_even_odd(structure, planes_with[cand[:, 0]], x, y)
        inside[cand[hit, 0], cand[hit, 1], cand[hit, 2]] = True
    mask = inside[row_of_plane[lv_plane]] & np.isfinite(L)
    if mask.any():
        extremes = (float(np.min(L, where=mask, initial=np.inf)),
                    float(np.max(L, where=mask, initial=-np.inf)))  # fmt: skip
    else:
        extremes = (np.inf, -np.inf)
    return mean[good], w[good], spread, nan_mm3, extremes


def _extremes(f, X, Y, X1, Y1, plane, nx, ny, hx, hy, zlo, zhi):
    """Minimum and maximum of the trilinear dose on the structure's boundary: contour
    edges split at the dose grid lines (ends and midpoints of the pieces), at every
    level of the slab (faces and dose slices within)."""
    edge, ax, ay, bx, by = split_edges(X / nx, Y / ny, X1 / nx, Y1 / ny)
    e_plane = plane[edge]
    px = f.x0_mm + np.concatenate([ax, 0.5 * (ax + bx)]) * nx * hx
    py = f.y0_mm + np.concatenate([ay, 0.5 * (ay + by)]) * ny * hy
    pplane = np.concatenate([e_plane, e_plane])
    lv_plane, lv_z = _levels(f, zlo, zhi)
    n_lv = np.bincount(lv_plane, minlength=len(zlo))
    first = np.cumsum(n_lv) - n_lv
    reps = n_lv[pplane]
    pt = np.repeat(np.arange(len(pplane)), reps)
    starts = np.cumsum(reps) - reps
    lv = first[pplane][pt] + (np.arange(reps.sum()) - starts[pt])
    d = f.sample(px[pt], py[pt], lv_z[lv])
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return np.inf, -np.inf
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
