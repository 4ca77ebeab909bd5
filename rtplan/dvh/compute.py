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
    Trilinear interpolation between dose voxel centres (:mod:`rtplan.dosefield`).
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
    :mod:`rtplan.dosefield`).  Structure volume beyond it, or where the dose is NaN,
    is ``outside_dose_cc``; no dose is assumed there.  Within the tolerance
    (:class:`OutsideTolerance`; default 0.1 % of the structure and at most 1 cc) the dose
    metrics are over the dosed part and the DVH carries one flag saying so; beyond it
    they are undefined (:mod:`rtplan.dvh.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtplan.defaults import (
    DEFAULT_METRICS,  # noqa: F401  (re-exported: metrics when none are asked for)
    OUTSIDE_TOLERANCE_CC,
    OUTSIDE_TOLERANCE_FRACTION,
)
from rtplan.dose import Dose
from rtplan.dosefield import AxialField, axial_field
from rtplan.dvh.histogram import DVH
from rtplan.dvh.lattice import cell_moments, split_edges
from rtplan.errors import ContourError, GeometryError, InputError
from rtplan.polygon import nesting_depths, signed_area
from rtplan.structure import Contour, Structure

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
    outside_tolerance: OutsideTolerance | None = None,
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
    outside_tolerance : OutsideTolerance
        How much of the structure may lie outside the dose grid with its dose metrics
        still computed (over the dosed part, flagged); default
        :data:`DEFAULT_OUTSIDE_TOLERANCE` (0.1 % of the structure and at most 1 cc).

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
    >>> round(dvh.volume_cc, 6)
    1.0
    >>> round(dvh.mean_gy, 6), round(dvh.metric("D50%"), 6), round(dvh.max_gy, 6)
    (15.0, 15.0, 20.0)
    """
    _check_frames(structure, dose)
    if not structure.planes:
        raise ContourError(
            "has no closed planar contours", path=structure.source or None, structure=structure.name
        )
    slabs = structure.slabs_mm(end_cap)
    f = axial_field(dose) if field is None else field
    nx, ny = _sub_cells(structure, f, resolution_mm)
    hx, hy = f.dx_mm / nx, f.dy_mm / ny
    clipped = _clip_to_dose(structure, slabs, f, hx, hy)
    conventions = {
        "end_cap": end_cap,
        "slab_thickness_mm": structure.slab_thickness_mm,
        "resolution_mm": [hx, hy],
        "dose_interpolation": "trilinear",
        "holes": "even-odd",
        "histogram": "binless",
    }
    volume_cc = float(np.sum(structure.plane_areas_mm2 * (slabs[:, 1] - slabs[:, 0]))) / 1000.0
    if not clipped.edges:
        return _empty_dvh(structure, volume_cc, prescription_gy, conventions)
    dose_gy, volume_mm3, spread_gy, (dmin, dmax), nan_mm3 = _sample(
        structure, f, clipped, nx, ny, hx, hy
    )
    outside_cc = max(clipped.outside_mm3 + nan_mm3, 0.0) / 1000.0
    tolerance = DEFAULT_OUTSIDE_TOLERANCE if outside_tolerance is None else outside_tolerance
    return DVH(
        sample_dose_gy=dose_gy,
        sample_volume_cc=volume_mm3 / 1000.0,
        sample_spread_gy=spread_gy,
        name=structure.name,
        min_gy=dmin,
        max_gy=dmax,
        outside_dose_cc=outside_cc,
        outside_tolerance_cc=tolerance.limit_cc(volume_cc),
        prescription_gy=prescription_gy,
        conventions=conventions,
        flags=_outside_flags(outside_cc, volume_cc, tolerance),
    )


@dataclass(frozen=True)
class OutsideTolerance:
    """Structure volume allowed outside the dose grid with dose metrics still computed.

    A structure whose part outside the dose grid is at most ``fraction`` of its volume
    *and* at most ``cc`` gets its dose metrics over the dosed part (flagged, with
    ``outside_dose_cc``); beyond that its dose metrics are undefined (NaN with a note).
    """

    fraction: float = OUTSIDE_TOLERANCE_FRACTION
    cc: float = OUTSIDE_TOLERANCE_CC

    def __post_init__(self):
        if not (self.fraction >= 0 and self.cc >= 0):
            raise InputError(
                f"outside-dose tolerance must be >= 0, got {100 * self.fraction:g} % and "
                f"{self.cc:g} cc"
            )

    def limit_cc(self, volume_cc: float) -> float:
        """The outside volume (cc) tolerated for a structure of ``volume_cc``."""
        return min(self.fraction * volume_cc, self.cc)

    def describe(self) -> str:
        return f"{100 * self.fraction:g} % of the structure and at most {self.cc:g} cc"


#: The default: 0.1 % of the structure and at most 1 cc (a BODY whose skin grazes the
#: edge of the dose grid keeps its metrics; a target cut by the grid does not).
DEFAULT_OUTSIDE_TOLERANCE = OutsideTolerance()


def _check_frames(structure: Structure, dose: Dose) -> None:
    """Raise when the structure and the dose name different frames of reference."""
    mine, theirs = structure.frame_of_reference_uid, dose.frame_of_reference_uid
    if mine and theirs and mine != theirs:
        where = f"dose {dose.source}" if dose.source else "the dose"
        raise GeometryError(
            f"{where} is in frame of reference {theirs}, the structure in {mine}",
            path=structure.source or None,
            structure=structure.name,
        )


def _sub_cells(structure: Structure, f: AxialField, resolution_mm: float | None):
    """Sub-cells per dose voxel along x and y (see ``resolution_mm`` of :func:`compute`)."""
    if resolution_mm is None:
        max_area = float(np.max(structure.plane_areas_mm2))
        target = max(np.sqrt(max(max_area, 0.0)) / CELLS_ACROSS, MIN_RESOLUTION_MM)
    else:
        if not resolution_mm > 0:
            raise InputError(f"resolution_mm must be positive, got {resolution_mm}")
        target = float(resolution_mm)
    nx = max(1, int(np.ceil(f.dx_mm / target - 1e-9)))
    ny = max(1, int(np.ceil(f.dy_mm / target - 1e-9)))
    return nx, ny


@dataclass(frozen=True)
class _Clipped:
    """The structure cut to the dose grid's box: contour edges in lattice units (one
    ``(X, Y, sign, plane)`` tuple per polygon), each plane's slab within the box
    ``[zlo, zhi]``, and the volume (mm^3) left outside."""

    edges: list
    zlo: np.ndarray
    zhi: np.ndarray
    outside_mm3: float


def _clip_to_dose(structure: Structure, slabs, f: AxialField, hx: float, hy: float) -> _Clipped:
    """Clip every plane's polygons to the dose box (in-plane) and its slab to the box in z."""
    ext = f.extent_mm
    zlo = np.maximum(slabs[:, 0], ext[2, 0])
    zhi = np.minimum(slabs[:, 1], ext[2, 1])
    thick_in = np.maximum(zhi - zlo, 0.0)
    full_area = structure.plane_areas_mm2
    edges = []
    clipped_area = np.zeros(len(full_area))
    for p, plane_polys in enumerate(structure.planes.values()):
        if thick_in[p] <= 0:
            continue
        depths = nesting_depths(plane_polys)
        for poly, depth in zip(plane_polys, depths, strict=True):
            a = signed_area(poly)
            if a == 0:
                continue
            poly = np.asarray(poly, dtype=float)
            c = _clip_to_box(poly, ext[0], ext[1])
            if len(c) < 3:
                continue
            sign = (-1.0) ** depth * np.sign(a)
            clipped_area[p] += sign * (a if c is poly else signed_area(c))
            X = (c[:, 0] - f.x0_mm) / hx
            Y = (c[:, 1] - f.y0_mm) / hy
            edges.append((X, Y, np.full(len(c), sign), np.full(len(c), p)))
    outside = float(np.sum(full_area * (slabs[:, 1] - slabs[:, 0]) - clipped_area * thick_in))
    return _Clipped(edges, zlo, zhi, outside)


def _sample(structure: Structure, f: AxialField, clipped: _Clipped, nx, ny, hx, hy):
    """Samples (dose, volume mm^3, spread) of every (cell, slab) piece, the exact dose
    extremes, and the volume (mm^3) whose dose is NaN; by chunks of planes holding about
    :data:`CHUNK_CELLS` cells each, so temporaries stay small."""
    edges = clipped.edges
    planes = list(structure.planes)
    per_plane = np.abs(structure.plane_areas_mm2) / (hx * hy) + 1.0
    chunk_of_plane = np.floor(np.cumsum(per_plane) / CHUNK_CELLS).astype(int)
    lv_plane, lv_z = _levels(f, clipped.zlo, clipped.zhi)
    parts, lo_in, hi_in, nan_mm3 = [], np.inf, -np.inf, 0.0
    for chunk in sorted({int(chunk_of_plane[e[3][0]]) for e in edges}):  # (np.unique imports np.ma)
        sel = [e for e in edges if chunk_of_plane[e[3][0]] == chunk]
        X = np.concatenate([e[0] for e in sel])
        Y = np.concatenate([e[1] for e in sel])
        sign = np.concatenate([e[2] for e in sel])
        plane = np.concatenate([e[3] for e in sel]).astype(np.int64)
        nxt = _next_in_ring([len(e[0]) for e in sel])
        X1, Y1 = X[nxt], Y[nxt]
        cells = cell_moments(X, Y, X1, Y1, sign, plane)
        crossed = np.concatenate(
            [cells.plane[(cells.area > 1 + 1e-6) | (cells.area < -1e-6)],
             cells.run_plane[np.abs(cells.run_area - 1) > 1e-6]]
        )  # fmt: skip
        if len(crossed):
            raise ContourError(
                f"contours cross each other on plane z={planes[int(crossed[0])]:.2f} mm",
                path=structure.source or None,
                structure=structure.name,
            )
        in_chunk = chunk_of_plane[lv_plane] == chunk
        levels = _Levels.of(lv_plane[in_chunk], lv_z[in_chunk])
        crop = _crop(X, Y, nx, ny)
        L = _level_doses(f, levels.z, crop)
        mean, vol, spread, nan_chunk = _cell_samples(L, levels, crop, cells, nx, ny, hx * hy)
        nan_mm3 += nan_chunk
        (j0, _), (i0, _) = crop
        in_knots = np.stack([X / nx - i0, Y / ny - j0, X1 / nx - i0, Y1 / ny - j0])
        lo, hi = _extremes(L, levels, plane, in_knots)
        lo_in, hi_in = min(lo_in, lo), max(hi_in, hi)
        parts.append((mean, vol, spread))
    dose_gy, volume_mm3, spread_gy = (np.concatenate(a) for a in zip(*parts, strict=True))
    extremes = (lo_in, hi_in) if np.isfinite(lo_in) else (float("nan"), float("nan"))
    return dose_gy, volume_mm3, spread_gy, extremes, nan_mm3


def _outside_flags(outside_cc: float, volume_cc: float, tolerance: OutsideTolerance):
    """The one flag of a structure partly outside the dose grid (none when inside)."""
    if not outside_cc > 1e-6 * max(volume_cc, 1e-3):
        return ()
    share = f"{outside_cc:.4g} cc of {volume_cc:.4g} cc lie outside the dose grid"
    if outside_cc <= tolerance.limit_cc(volume_cc):
        return (
            f"{share}: within the tolerance ({tolerance.describe()}); "
            "dose metrics are over the dosed part",
        )
    return (f"{share}: beyond the tolerance ({tolerance.describe()}); dose metrics undefined",)


def dose_grid_structure(dose: Dose) -> Structure:
    """The box covered by a dose grid (see :mod:`rtplan.dosefield`) as a structure.

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

    Returns ``(plane, z)`` arrays, grouped by plane in increasing z (planes whose slab
    is empty have no levels).
    """
    has = zhi > zlo
    planes = np.flatnonzero(has)
    a, b = zlo[has], zhi[has]
    k_lo = np.searchsorted(f.z_mm, a, side="right")
    k_hi = np.searchsorted(f.z_mm, b, side="left")
    count = np.maximum(k_hi - k_lo, 0) + 2
    start = np.cumsum(count) - count
    n = int(count.sum())
    plane = np.repeat(planes, count)
    rank = np.arange(n) - np.repeat(start, count)
    z = f.z_mm[np.clip(np.repeat(k_lo - 1, count) + rank, 0, len(f.z_mm) - 1)]
    z[start] = a
    z[start + count - 1] = b
    return plane.astype(np.int64), z


@dataclass(frozen=True)
class _Levels:
    """The z levels of the planes of one chunk, grouped by plane.

    ``plane``/``z`` per level; ``first``/``last`` level of each plane row; ``planes``
    the plane index of each row and ``row_of_plane`` the inverse map (-1: no row).
    """

    plane: np.ndarray
    z: np.ndarray
    first: np.ndarray
    last: np.ndarray
    planes: np.ndarray
    row_of_plane: np.ndarray

    @classmethod
    def of(cls, plane, z):
        first = np.flatnonzero(np.concatenate([[True], plane[1:] != plane[:-1]]))
        last = np.concatenate([first[1:], [len(plane)]]) - 1
        planes = plane[first]
        row_of_plane = np.full(int(planes.max()) + 1, -1)
        row_of_plane[planes] = np.arange(len(planes))
        return cls(plane, z, first, last, planes, row_of_plane)

    @property
    def thickness_mm(self) -> np.ndarray:
        return self.z[self.last] - self.z[self.first]


def _crop(X, Y, nx, ny):
    """Dose knots ``((j0, j1), (i0, i1))`` around contour points ``X, Y`` (lattice
    units): the corners of every dose cell the contours reach."""
    j = np.floor(np.array([Y.min(), Y.max()]) / ny).astype(int)
    i = np.floor(np.array([X.min(), X.max()]) / nx).astype(int)
    return (int(j[0]), int(j[1]) + 2), (int(i[0]), int(i[1]) + 2)


def _level_doses(f: AxialField, z, crop):
    """Dose on the dose-grid knots of the ``crop`` window at each level ``z`` (linear in z)."""
    (j0, j1), (i0, i1) = crop
    nz = len(f.z_mm)
    k = np.clip(np.searchsorted(f.z_mm, z, side="right") - 1, 0, nz - 2)
    a = np.clip((z - f.z_mm[k]) / (f.z_mm[k + 1] - f.z_mm[k]), 0.0, 1.0)[:, None, None]
    v = f.values_gy
    return (1 - a) * v[k, j0:j1, i0:i1] + a * v[k + 1, j0:j1, i0:i1]


def _cell_samples(L, levels, crop, cells, nx, ny, cell_mm2):
    """Mean dose, volume (mm^3) and spread of every (cell, slab) sample, and the volume
    whose dose is NaN.

    Along z the trilinear dose is averaged over the slab exactly: the slab mean on the
    knots, ``M``, is a weighted sum of the level doses ``L``, and the mean over a cell of
    the bilinear interpolant of ``M`` is exact given the cell's area moments.  The
    spread adds the in-plane variance (mean gradient of ``M`` and the cell covariance)
    and the z variance over the slab (that of a dose linear between the slab faces,
    bilinearly interpolated from the knots).  Interior cells are full (centroid at the
    sub-cell centre, variance 1/12 of the sub-cell along each axis).
    """
    (j0, _), (i0, _) = crop
    cy, cx = L.shape[1:]
    # slab mean on the knots: each level weighs half the pieces on either side of it
    gap = np.diff(levels.z)
    gap[levels.last[:-1]] = 0.0  # no piece between the last level of a plane and the next
    weight = 0.5 * (np.concatenate([[0.0], gap]) + np.concatenate([gap, [0.0]]))
    thick = levels.thickness_mm
    share = weight / thick[levels.row_of_plane[levels.plane]]  # of its plane's slab mean
    flat = L.reshape(len(weight), -1)
    nan = np.isnan(flat)
    some_nan = nan.any()
    if some_nan:  # a NaN level dose makes its own plane's mean NaN, not the others'
        flat = np.where(nan, 0.0, flat)
    # each plane's levels summed in order (no matrix product: BLAS threads would only spin)
    count = levels.last - levels.first + 1
    mean_k = share[levels.first, None] * flat[levels.first]
    for k in range(1, int(count.max())):
        rows = np.flatnonzero(count > k)
        if len(rows) == len(count):
            mean_k += share[levels.first + k, None] * flat[levels.first + k]
        else:
            mean_k[rows] += share[levels.first[rows] + k, None] * flat[levels.first[rows] + k]
    if some_nan:
        mean_k[np.logical_or.reduceat(nan & (share > 0)[:, None], levels.first, axis=0)] = np.nan
    mean_k = mean_k.reshape(len(thick), cy, cx)
    # z variance: that of a dose linear between the slab faces
    zvar_k = (L[levels.last] - L[levels.first]) ** 2 / 12.0
    coef = np.empty((8, len(thick), cy - 1, cx - 1))
    _bilinear(mean_k, coef[:4])
    _bilinear(zvar_k, coef[4:])

    # boundary cells: their own moments
    pr = levels.row_of_plane[cells.plane]
    cell = (pr * (cy - 1) + cells.row // ny - j0) * (cx - 1) + (cells.col // nx - i0)
    mean_b, var_b = _sample_stats(
        coef.reshape(8, -1)[:, cell],
        (cells.col % nx + cells.mean_u) / nx,
        (cells.row % ny + cells.mean_v) / ny,
        cells.var_u / nx**2,
        cells.var_v / ny**2,
        cells.cov_uv / (nx * ny),
    )
    w_b = cells.area * cell_mm2 * thick[pr]
    # interior cells: full sub-cells
    interior = _dose_cell_samples if nx == ny == 1 else _sub_cell_samples
    mean_i, var_i, w_i = interior(coef, levels, crop, cells, nx, ny, cell_mm2 * thick)

    mean = np.concatenate([mean_b, mean_i])
    var = np.concatenate([var_b, var_i])
    w = np.concatenate([w_b, w_i])
    good = np.isfinite(mean)
    nan_mm3 = float(w.sum() - w[good].sum()) if not good.all() else 0.0
    if not good.all():
        mean, var, w = mean[good], var[good], w[good]
    spread = np.sqrt(3.0 * np.maximum(var, 0.0))
    return mean, w, spread, nan_mm3


def _sub_cell_samples(coef, levels, crop, cells, nx, ny, row_mm3):
    """Mean, variance and volume (mm^3) of the interior (full) sub-cells of a chunk, run by
    run (plane, row, column): centroid at the sub-cell centre, variances 1/12 of its side.
    ``coef``: the ``[8, row, j, i]`` coefficients of :func:`_bilinear`."""
    (j0, _), (i0, _) = crop
    _, _, h, w = coef.shape
    n = cells.run_length
    rpr = levels.row_of_plane[cells.run_plane]
    rank = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    col = np.repeat(cells.run_col, n) + rank
    ci = col // nx
    row_base = (rpr * h + cells.run_row // ny - j0) * w - i0
    cell = np.repeat(row_base, n) + ci
    mean, var = _sample_stats(
        coef.reshape(8, -1)[:, cell],
        (col - ci * nx + 0.5) / nx,
        np.repeat((cells.run_row % ny + 0.5) / ny, n),
        1.0 / (12 * nx**2),
        1.0 / (12 * ny**2),
    )
    return mean, var, np.repeat(row_mm3[rpr], n)


def _dose_cell_samples(coef, levels, crop, cells, nx, ny, row_mm3):
    """:func:`_sub_cell_samples` when the sub-cells are the dose cells (``nx = ny = 1``):
    every cell of the chunk's crop is evaluated at once (arrays no larger than ``coef``,
    no gathers) and those of the runs picked out, in the same order."""
    _, rows, h, w = coef.shape
    (j0, _), (i0, _) = crop
    width = w + 1  # a spare column: a run's end mark never spills into the next row
    start = (levels.row_of_plane[cells.run_plane] * h + cells.run_row - j0) * width
    start += cells.run_col - i0
    mark = np.zeros(rows * h * width + 1, dtype=np.int8)
    mark[start] = 1
    mark[start + cells.run_length] = -1  # runs are disjoint, separated by boundary cells
    inside = np.cumsum(mark[:-1], dtype=np.int8).view(bool).reshape(rows, h, width)[..., :w]
    mean, var = _sample_stats(coef, 0.5, 0.5, 1.0 / 12, 1.0 / 12)
    vol = np.broadcast_to(row_mm3[:, None, None], inside.shape)
    return mean[inside], var[inside], vol[inside]


def _bilinear(knots, out):
    """Write the coefficients ``(a, b, c, d)`` of ``a + b u + c v + d u v`` in every knot
    cell (``[k, j, i]`` to ``[k, j + 1, i + 1]``) of a ``[k, j, i]`` array of knot values
    into ``out[0..3]``."""
    f00, f10 = knots[:, :-1, :-1], knots[:, :-1, 1:]
    f01, f11 = knots[:, 1:, :-1], knots[:, 1:, 1:]
    out[0] = f00
    np.subtract(f10, f00, out=out[1])
    np.subtract(f01, f00, out=out[2])
    np.subtract(f11, f10, out=out[3])
    out[3] -= out[2]


def _sample_stats(coef, u, v, var_u, var_v, cov=None):
    """Mean and variance of a bilinear dose (``coef[:4]``) over a region of centroid
    ``(u, v)`` and covariance ``(var_u, var_v, cov)`` (knot-cell units; ``cov=None``: no
    covariance), plus the bilinear z variance ``coef[4:]`` at the centroid."""
    a, b, c, d, qa, qb, qc, qd = coef
    gu = d * v
    gu += b  # d/du of a + b u + c v + d u v
    gv = d * u
    gv += c  # d/dv
    mean = b * u
    mean += a
    mean += v * gv
    var = gu * gu
    var *= var_u
    var += gv * gv * var_v
    if cov is not None:
        mean += d * cov
        var += 2 * gu * gv * cov
    zvar = qd * u
    zvar += qc
    zvar *= v
    zvar += qa
    zvar += qb * u
    var += zvar
    return mean, var


def _extremes(L, levels, plane, knots):
    """Minimum and maximum of the trilinear dose over the structure in one chunk.

    The extremes of a trilinear dose over a region bounded by axial contours and slab
    faces lie at its corner and boundary points: the dose voxel centres (knots) inside
    the contours, and the contour edges split at the dose grid lines (ends and midpoints
    of the pieces), each at every level of the slab (faces and dose slices within).
    ``knots``: the edges ``(x0, y0, x1, y1)`` in knot units of the crop of ``L``.
    """
    cy, cx = L.shape[1:]
    pr = levels.row_of_plane[plane]
    n_rows = len(levels.planes)
    # knots inside: even-odd pairs of the crossings with each knot row (half-open rule)
    x0, y0, x1, y1 = knots
    ylo, yhi = np.minimum(y0, y1), np.maximum(y0, y1)
    m_lo = np.ceil(ylo).astype(np.int64)
    count = np.maximum(np.ceil(yhi).astype(np.int64) - m_lo, 0)
    e = np.repeat(np.arange(len(x0)), count)
    m = m_lo[e] + (np.arange(len(e)) - np.repeat(np.cumsum(count) - count, count))
    xc = x0[e] + (m - y0[e]) * (x1[e] - x0[e]) / (y1[e] - y0[e])
    line = pr[e] * cy + m
    order = np.lexsort((xc, line))
    line, xc = line[order], xc[order]
    first = np.clip(np.ceil(xc[0::2]).astype(np.int64), 0, cx)
    stop = np.clip(np.floor(xc[1::2]).astype(np.int64) + 1, 0, cx)
    ok = stop > first
    mark = np.zeros(n_rows * cy * (cx + 1) + 1, dtype=np.int32)
    np.add.at(mark, line[0::2][ok] * (cx + 1) + first[ok], 1)
    np.add.at(mark, line[0::2][ok] * (cx + 1) + stop[ok], -1)
    inside = np.cumsum(mark[:-1].reshape(n_rows, cy, cx + 1), axis=2)[:, :, :cx] > 0
    at = L[inside[levels.row_of_plane[levels.plane]]]
    lo = float(np.fmin.reduce(at, initial=np.inf))  # fmin, fmax: NaN ignored
    hi = float(np.fmax.reduce(at, initial=-np.inf))
    # boundary: starts and midpoints of the edge pieces, at every level of the plane
    edge, ax, ay, bx, by = split_edges(x0, y0, x1, y1)
    px = np.concatenate([ax, 0.5 * (ax + bx)])
    py = np.concatenate([ay, 0.5 * (ay + by)])
    prow = np.concatenate([pr[edge], pr[edge]])
    i = np.clip(np.floor(px).astype(np.int64), 0, cx - 2)
    j = np.clip(np.floor(py).astype(np.int64), 0, cy - 2)
    tx, ty = np.clip(px - i, 0.0, 1.0), np.clip(py - j, 0.0, 1.0)
    reps = levels.last[prow] - levels.first[prow] + 1
    pt = np.repeat(np.arange(len(px)), reps)
    lv = np.repeat(levels.first[prow], reps) + (
        np.arange(len(pt)) - np.repeat(np.cumsum(reps) - reps, reps)
    )
    base = (lv * cy + j[pt]) * cx + i[pt]
    flat = L.ravel()
    tx, ty = tx[pt], ty[pt]
    d = (1 - ty) * ((1 - tx) * flat[base] + tx * flat[base + 1]) + ty * (
        (1 - tx) * flat[base + cx] + tx * flat[base + cx + 1]
    )
    d = d[np.isfinite(d)]
    if len(d):
        lo, hi = min(lo, float(d.min())), max(hi, float(d.max()))
    return lo, hi
