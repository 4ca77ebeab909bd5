"""Exact anisotropic and asymmetric margins: Minkowski sums with an octant-wise ellipsoid.

Directions and shape
--------------------
A margin gives six distances (mm) in DICOM patient directions (LPS: +x = patient left,
+y = posterior, +z = superior): ``right`` (towards -x), ``left`` (+x), ``anterior`` (-y),
``posterior`` (+y), ``superior`` (+z), ``inferior`` (-z).  ``radial`` sets the four
in-plane ones, ``longitudinal`` superior and inferior.  The margin shape ``K`` is, in each
octant, the ellipsoid octant whose semi-axes are that octant's three distances (one
ellipsoid when the margins are symmetric).  ``K`` is convex, so

* expanding a region ``S`` gives the Minkowski sum ``S ⊕ K`` = every point whose
  *gauge distance* ``g(p - s) = |((p - s)_a / K_a)|`` to some ``s`` in ``S`` is at most 1
  (``K_a`` the semi-axis on the side the offset points to);
* shrinking gives the dual, ``complement(complement(S) ⊕ (-K))``: every point whose
  margin shape, centred on it, fits inside ``S``.

Margins are the same for every patient orientation: patient directions are mapped to array
axes through the grid's direction cosines (the grid must be aligned with the patient axes).

Algorithm
---------
1. The region is a :class:`~rtplan.volumes.subvoxel.SubvoxelMask`: full voxels plus one
   boundary plane per partly covered voxel, reconstructed from the partial-volume mask.
2. The gauge distance from every voxel centre to the nearest occupied voxel centre is
   computed exactly: with one exact Euclidean distance transform
   (``scipy.ndimage.distance_transform_edt``, ``sampling = spacing / semi-axis``, which
   turns the ellipsoid into a unit sphere) when the margins are symmetric; with exact
   separable lower envelopes of the per-axis (asymmetric parabola) costs when they are not.
   Both also return the nearest centre.  No repeated small dilations are used.
3. A centre is inside when its distance to a full voxel's centre is at most 1, or to any
   occupied centre at most ``1 - rho_p`` (``rho_p`` bounds how much the gauge changes
   across half a voxel box, in the direction of the offset); outside beyond ``1 + rho_p``.
4. Centres near the margin surface are refined: their gauge distance to the reconstructed
   region itself (the box of a full voxel, the plane of a partial one, chosen among the 19
   voxels around the nearest centre) places the new boundary inside the voxel.  The result
   is again a ``SubvoxelMask`` (plane per voxel: the old plane moved by its support).

The result is exact for a region made of voxel boxes and planar pieces, up to the choice
among the 19 neighbours (in concave corners the nearest piece may lie further: centres
within ``rho`` of the margin surface may then be misclassified); on analytic shapes the
volume error is a few tenths of a percent at 1 mm voxels (the tests and docs/volumes.md).
Work is done in chunks on a thread pool (numpy releases the GIL).
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from rtplan.errors import GeometryError, InputError
from rtplan.grid import Grid
from rtplan.volumes.subvoxel import SubvoxelMask

DIRECTIONS = ("right", "left", "anterior", "posterior", "superior", "inferior")
SHORTHANDS = {
    "radial": ("right", "left", "anterior", "posterior"),
    "longitudinal": ("superior", "inferior"),
    "all": DIRECTIONS,
    "isotropic": DIRECTIONS,
}
#: (patient axis, sign) of each direction in LPS.
_PATIENT_AXIS = {
    "right": (0, -1),
    "left": (0, 1),
    "anterior": (1, -1),
    "posterior": (1, 1),
    "inferior": (2, -1),
    "superior": (2, 1),
}


@dataclass(frozen=True)
class Margins:
    """Six margins (mm) in patient directions; all >= 0 (expand) or all <= 0 (shrink).

    Examples
    --------
    >>> m = Margins.parse("radial=15, longitudinal=30")
    >>> m.right, m.superior, m.is_expansion
    (15.0, 30.0, True)
    >>> Margins.parse("-3").left
    -3.0
    >>> str(Margins.parse("radial=15,superior=40,inferior=30"))
    'right=15,left=15,anterior=15,posterior=15,superior=40,inferior=30'
    """

    right: float = 0.0
    left: float = 0.0
    anterior: float = 0.0
    posterior: float = 0.0
    superior: float = 0.0
    inferior: float = 0.0

    def __post_init__(self):
        values = []
        for name in DIRECTIONS:
            v = getattr(self, name)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise InputError(f"margin '{name}' must be a number (mm), got {v!r}") from None
            if not math.isfinite(v):
                raise InputError(f"margin '{name}' must be finite, got {v}")
            object.__setattr__(self, name, v)
            values.append(v)
        if min(values) < 0 < max(values):
            raise InputError(
                f"margins mix expansion and shrinking ({self}); apply them as two steps"
            )

    @classmethod
    def isotropic(cls, mm: float) -> Margins:
        return cls(*([mm] * 6))

    @classmethod
    def parse(cls, text) -> Margins:
        """Read ``"15"``, ``"radial=15,longitudinal=35"``, ``"right=5,left=10,..."``.

        Keys: the six directions, ``radial``, ``longitudinal``, ``all``; later keys
        override earlier ones (``"all=5,superior=10"``).  Values in mm; negative shrinks.
        A :class:`Margins` or a mapping of the same keys is accepted too.
        """
        if isinstance(text, Margins):
            return text
        if isinstance(text, (int, float)):
            return cls.isotropic(float(text))
        if isinstance(text, dict):
            items = list(text.items())
        else:
            s = str(text).strip()
            if not s:
                raise InputError("empty margin: give e.g. '5' or 'radial=15,longitudinal=30'")
            if "=" not in s:
                try:
                    return cls.isotropic(_number(s, "margin"))
                except InputError:
                    raise InputError(
                        f"margin '{s}' is neither a number of mm nor KEY=MM pairs "
                        "(e.g. 'radial=15,longitudinal=30')"
                    ) from None
            items = []
            for part in re.split(r"[,;]", s):
                if not part.strip():
                    continue
                key, sep, value = part.partition("=")
                if not sep:
                    raise InputError(f"margin part '{part.strip()}' is not KEY=MM (in '{s}')")
                items.append((key.strip(), value))
        values = dict.fromkeys(DIRECTIONS, 0.0)
        for key, value in items:
            k = str(key).strip().lower()
            v = _number(value, f"margin '{k}'")
            if k in SHORTHANDS:
                for d in SHORTHANDS[k]:
                    values[d] = v
            elif k in values:
                values[k] = v
            else:
                raise InputError(
                    f"unknown margin direction '{key}' (use {', '.join(DIRECTIONS)}, "
                    "radial, longitudinal, all)"
                )
        return cls(**values)

    def __str__(self) -> str:
        return ",".join(f"{d}={_fmt(getattr(self, d))}" for d in DIRECTIONS)

    @property
    def values(self) -> tuple[float, ...]:
        return tuple(getattr(self, d) for d in DIRECTIONS)

    @property
    def is_zero(self) -> bool:
        return all(v == 0 for v in self.values)

    @property
    def is_expansion(self) -> bool:
        """True when no margin is negative."""
        return min(self.values) >= 0

    @property
    def largest_mm(self) -> float:
        return max(abs(v) for v in self.values)

    def magnitude(self) -> Margins:
        """The same margins with the sign dropped."""
        return Margins(*(abs(v) for v in self.values))

    def reflected(self) -> Margins:
        """The margin shape mirrored through the origin (``-K``)."""
        return Margins(
            self.left, self.right, self.posterior, self.anterior, self.inferior, self.superior
        )

    def axis_semi_axes(self, direction=None) -> tuple[np.ndarray, np.ndarray]:
        """Semi-axes (mm) along array axes: ``(towards increasing index, decreasing)``.

        Parameters
        ----------
        direction : 3x3 array_like, optional
            ``direction[:, a]`` is the LPS unit vector of array axis ``a`` (``Grid``
            convention); default axial head-first supine, where axes ``k, j, i`` run along
            +z, +y, +x.

        Raises
        ------
        GeometryError
            If an array axis is not along a patient axis (oblique grid).
        """
        d = np.asarray(
            direction if direction is not None else ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
            dtype=float,
        )
        mag = self.magnitude()
        by_axis_sign = {_PATIENT_AXIS[n]: getattr(mag, n) for n in DIRECTIONS}
        plus, minus = np.zeros(3), np.zeros(3)
        for a in range(3):
            col = d[:, a]
            p = int(np.argmax(np.abs(col)))
            if abs(abs(col[p]) - 1.0) > 1e-4:
                raise GeometryError(
                    "margins need a grid whose axes run along the patient axes "
                    f"(array axis {a} points along {np.round(col, 4).tolist()})"
                )
            s = 1 if col[p] > 0 else -1
            plus[a] = by_axis_sign[(p, s)]
            minus[a] = by_axis_sign[(p, -s)]
        return plus, minus


def _number(value, what: str) -> float:
    try:
        v = float(str(value).strip().removesuffix("mm").strip())
    except ValueError:
        raise InputError(f"{what} must be a number of mm, got '{str(value).strip()}'") from None
    if not math.isfinite(v):
        raise InputError(f"{what} must be finite, got '{value}'")
    return v


def _fmt(v: float) -> str:
    return f"{v:g}"


# ---------------------------------------------------------------------------- public API
def apply_margin(region: SubvoxelMask, margins, direction=None) -> SubvoxelMask:
    """Expand (margins >= 0) or shrink (margins <= 0) a region; same array shape.

    Parameters
    ----------
    region : SubvoxelMask
        The region, on a grid aligned with the patient axes.
    margins : Margins or str
        See :class:`Margins`.
    direction : 3x3 array_like, optional
        Grid direction cosines (``Grid.direction``); default axial HFS.

    Returns
    -------
    SubvoxelMask
        The Minkowski sum (expansion) or its dual (shrinking), clipped to the array: make
        the array large enough (``margins`` plus two voxels around the region) first.
    """
    m = Margins.parse(margins)
    if m.is_zero:
        return region
    plus, minus = m.axis_semi_axes(direction)
    box = region.bounding_box()
    if box is None:
        return region
    h = np.asarray(region.spacing_mm)
    # work on the part of the array the result can reach (the region's box, grown by the
    # margin when expanding), two voxels more
    reach_lo = np.ceil(minus / h).astype(int) + 2 if m.is_expansion else np.full(3, 2)
    reach_hi = np.ceil(plus / h).astype(int) + 2 if m.is_expansion else np.full(3, 2)
    lo = np.maximum(box[0] - reach_lo, 0)
    hi = np.minimum(box[1] + reach_hi, region.shape)
    part = region.cropped(lo, hi)
    if m.is_expansion:
        out = _dilate(part, plus, minus)
    else:  # shrink: complement, expand by the mirrored shape, complement
        out = _dilate(part.complement(), minus, plus).complement()
    return SubvoxelMask.embedded(out, lo, region.shape)


def expand_mask(
    mask: np.ndarray,
    margins,
    *,
    spacing_mm=None,
    grid: Grid | None = None,
) -> np.ndarray:
    """Expand or shrink a binary or partial-volume mask by per-direction margins.

    Parameters
    ----------
    mask : numpy.ndarray
        ``[k, j, i]`` boolean mask, or fractions in [0, 1] (partial volume; more
        accurate: the boundary is placed inside the voxels).  A boolean mask stands for
        the union of its voxel boxes.
    margins : Margins or str
        e.g. ``"radial=15,longitudinal=30"``; negative values shrink.
    spacing_mm : sequence of 3 float, optional
        Voxel size along the array axes (axial HFS orientation assumed).
    grid : Grid, optional
        Instead of ``spacing_mm``: spacing and orientation from a grid.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the same shape: voxels whose centre lies in the result.  Content
        that would fall outside the array is lost, and the outside of the array counts as
        outside the mask.

    Examples
    --------
    >>> m = np.zeros((1, 1, 9), bool); m[0, 0, 4] = True
    >>> expand_mask(m, "left=2.5,right=1", spacing_mm=(1, 1, 1)).astype(int).tolist()
    [[[0, 0, 0, 1, 1, 1, 1, 1, 0]]]
    """
    spacing, direction = _spacing_direction(spacing_mm, grid)
    arr = np.asarray(mask)
    if arr.ndim != 3:
        raise GeometryError(f"a mask must be 3-D, got shape {arr.shape}")
    region = SubvoxelMask.from_fraction(arr.astype(np.float32), spacing)
    m = Margins.parse(margins)
    pad = [int(math.ceil(m.largest_mm / h)) + 2 for h in spacing]
    big = region.padded(pad, pad)
    out = apply_margin(big, m, direction)
    sl = tuple(slice(p, p + n) for p, n in zip(pad, arr.shape, strict=True))
    return out.centre_inside[sl]


def _spacing_direction(spacing_mm, grid):
    if grid is not None:
        if not grid.is_uniform:
            raise GeometryError("margins need evenly spaced slices")
        return grid.spacing_mm, grid.direction_matrix
    if spacing_mm is None:
        raise InputError("give spacing_mm or grid")
    h = tuple(float(v) for v in spacing_mm)
    if len(h) != 3 or min(h) <= 0:
        raise GeometryError(f"spacing_mm must be three positive values, got {spacing_mm}")
    return h, None


# ---------------------------------------------------------------------------- engine
_BIG_SAMPLING = 1.0e6  # sampling along an axis with no margin: other columns unreachable
_THREADS = max(1, min(8, 2 * (os.cpu_count() or 1)))  # numpy threads overlap best at 2 per CPU
_SLACK = 0.1  # extra band (voxels) refined around the new boundary
_SPLIT_VOXELS = 2**20  # grids this large get their distance transform in two halves
_OPEN_COS = 0.9  # a plane runs on into a partial neighbour whose normal is within ~25 deg


def _dilate(region: SubvoxelMask, plus: np.ndarray, minus: np.ndarray) -> SubvoxelMask:
    """Minkowski sum of ``region`` with the octant-wise ellipsoid (semi-axes in mm)."""
    h = np.asarray(region.spacing_mm, dtype=float)
    seeds = region.phi < np.inf
    if not seeds.any():
        return region
    edge = any(seeds[(slice(None),) * a + (e,)].any() for a in range(3) for e in (0, -1))
    if edge:  # keep every seed one voxel away from the border
        grown = _dilate(region.padded((1, 1, 1), (1, 1, 1)), plus, minus)
        return grown.cropped((1, 1, 1), np.array(region.shape) + 1)
    # contiguous, so that the flat views below are views, not copies
    phi, normal = np.ascontiguousarray(region.phi), np.ascontiguousarray(region.normal)
    plus = np.asarray(plus, dtype=float)
    minus = np.asarray(minus, dtype=float)
    if np.array_equal(plus, minus):
        minus = plus  # symmetric: the side of an offset needs no look-up
    # smallest positive semi-axis per axis: bounds gauge distances across one voxel
    pos = np.where(
        (plus > 0) & (minus > 0),
        np.minimum(plus, minus),
        np.maximum(plus, minus),
    )
    used = pos > 0
    rho = float(np.sqrt(np.sum((h[used] / (2 * pos[used])) ** 2)))
    step = float(np.max(h[used] / pos[used]))
    width = rho + 1.5 * step + 1e-6
    gmax = 1.0 + width

    if np.allclose(plus, minus, rtol=0, atol=1e-9):
        dist, nearest_at = _edt_nearest(seeds, h, plus, gmax)
    else:
        dist, nearest_at = _separable_nearest(seeds, h, plus, minus, gmax)

    # A centre within gauge distance 1 of a full voxel's centre is inside the result.  Near
    # a partial voxel's centre it is inside when 1 - d > rho (the region lies within the
    # voxel box), which needs every semi-axis to be positive.
    degenerate = not (np.all(plus > 0) and np.all(minus > 0))
    surely_in = dist <= 1.0 - width
    if degenerate:
        surely_in[surely_in] = phi.reshape(-1)[nearest_at(surely_in)] == -np.inf
    out_phi = np.full(phi.shape, np.inf, dtype=np.float32)
    out_phi[phi == -np.inf] = -np.inf  # a full voxel stays full
    out_phi[surely_in] = -np.inf
    out_normal = np.zeros(normal.shape, dtype=np.float32)
    cand = (dist <= gmax) & (out_phi > -np.inf)
    if not cand.any():
        return SubvoxelMask(out_phi, out_normal, region.spacing_mm)
    flat = np.flatnonzero(cand)
    pts = np.stack(np.unravel_index(flat, cand.shape), axis=1)
    near = nearest_at(cand)
    d0 = dist.reshape(-1)[flat].astype(float)
    bounds = _Bounds(h, plus, minus, rho, float(pos[used].min()), degenerate)
    value, n_out = _in_chunks(_settle, pts, near, d0, phi, normal, bounds)
    out_phi.reshape(-1)[flat] = value
    out_normal.reshape(3, -1)[:, flat] = n_out.T
    return SubvoxelMask(out_phi, out_normal, region.spacing_mm).normalised()


@dataclass(frozen=True)
class _Bounds:
    h: np.ndarray
    plus: np.ndarray
    minus: np.ndarray
    rho: float
    smallest_mm: float
    degenerate: bool


def _in_chunks(fn, pts, near, d0, *shared):
    """``fn`` over chunks of the points on a thread pool (numpy releases the GIL)."""
    n_chunks = min(_THREADS, max(1, len(pts) // 20000))
    if n_chunks == 1:
        return fn(pts, near, d0, *shared)
    edges = np.linspace(0, len(pts), n_chunks + 1).astype(int)
    with ThreadPoolExecutor(n_chunks) as pool:
        parts = list(
            pool.map(
                lambda ab: fn(pts[ab[0] : ab[1]], near[ab[0] : ab[1]], d0[ab[0] : ab[1]], *shared),
                zip(edges[:-1], edges[1:], strict=True),
            )
        )
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _settle(pts, near, d0, phi, normal, b: _Bounds):
    """Value (signed mm, or +-inf) and normal of candidate points of the expansion.

    Only points near the new boundary need the exact distance (a voxel is partial when the
    boundary passes within half its box).  The boundary normal is estimated from the offset
    to the nearest centre and the region's reach beyond that centre from its plane (or box);
    points this puts near the boundary, or whose side is not certain, are refined
    (:func:`_refine`); the others are full or empty.
    """
    h, plus, minus, rho = b.h, b.plus, b.minus, b.rho
    v0 = (pts - np.stack(np.unravel_index(near, phi.shape), axis=1)) * h
    s0 = plus if plus is minus else np.where(v0 > 0, plus, minus)
    with np.errstate(divide="ignore", invalid="ignore"):
        g0 = np.where(s0 > 0, v0 / (s0 * s0), 0.0)
    g0n = np.linalg.norm(g0, axis=1, keepdims=True)
    n0 = np.divide(g0, g0n, out=np.zeros_like(g0), where=g0n > 0)
    len0 = np.linalg.norm((plus if plus is minus else np.where(n0 > 0, plus, minus)) * n0, axis=1)
    len0 = np.where(len0 > 0, len0, b.smallest_mm)
    ph0 = phi.reshape(-1)[near].astype(float)
    reach = np.where(
        np.isfinite(ph0),
        -np.nan_to_num(ph0) * np.einsum("ij,ji->i", n0, normal.reshape(3, -1)[:, near]),
        0.5 * (np.abs(n0) @ h),
    )
    near_full = ph0 == -np.inf
    # |D - d0| <= rho_p: first order, the gauge's gradient times the half box; second
    # order, half the box's squared gauge over the distance (the gauge's Hessian is at
    # most diag(1 / s^2) / g)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad0 = g0 / np.where(d0 > 0, d0, np.inf)[:, None]
    rho_p = np.abs(grad0) @ (h / 2) + 0.5 * rho * rho / np.maximum(d0 - rho, 0.05)
    rho_p = np.minimum(rho_p, rho)
    inside = (d0 < 1.0 - rho_p) & (near_full | (not b.degenerate))
    outside = d0 > 1.0 + rho_p
    d_est = d0 - reach / len0
    near_boundary = np.abs(d_est - 1.0) * len0 <= 0.5 * (np.abs(n0) @ h) + _SLACK * h.max()
    need = near_boundary | ~(inside | outside)
    value = np.where(inside, -np.inf, np.inf).astype(np.float32)
    n_out = np.zeros((len(pts), 3), dtype=np.float32)
    if need.any():
        value[need], n_out[need] = _refine(pts[need], near[need], phi, normal, h, plus, minus)
    return value, n_out


def _edt_nearest(seeds: np.ndarray, h: np.ndarray, semi: np.ndarray, gmax: float):
    """Gauge distance to the nearest seed centre, and a function giving its flat index at
    the points of a mask (symmetric margins).

    Exact where the distance is at most ``gmax`` (farther points get a distance above
    ``gmax``).  On large grids the array is cut across its longest axis into two halves,
    each transformed with the seeds within reach (``gmax`` times the semi-axis) beyond the
    cut, on two threads (scipy releases the GIL): a seed nearer than ``gmax`` is never
    farther than that from the point along the axis.
    """
    sampling = np.where(semi > 0, h / np.where(semi > 0, semi, 1.0), _BIG_SAMPLING)
    shape = seeds.shape
    ax = int(np.argmax(shape))
    n = shape[ax]
    reach = int(math.floor(gmax / sampling[ax])) + 1
    mid = n // 2
    if _THREADS > 1 and seeds.size >= _SPLIT_VOXELS and 4 * reach <= n:
        parts = ((0, mid + reach, 0, mid), (mid - reach, n, reach, n - mid + reach))
    else:
        parts = ((0, n, 0, n),)

    def transform(part):
        a, b, keep_lo, keep_hi = part
        sl = (slice(None),) * ax + (slice(a, b),)
        sub = seeds[sl]
        if not sub.any():
            return None
        idx = ndi.distance_transform_edt(
            ~sub, sampling=sampling, return_distances=False, return_indices=True
        )
        idx[ax] += a
        return idx[(slice(None),) * (ax + 1) + (slice(keep_lo, keep_hi),)]

    if len(parts) == 1:
        results = [transform(parts[0])]
    else:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(transform, parts))
    d2 = np.full(shape, np.inf, dtype=np.float32)
    idx = results[0] if len(parts) == 1 else np.zeros((3, *shape), dtype=np.int32)
    for (a, _, keep_lo, keep_hi), sub_idx in zip(parts, results, strict=True):
        if sub_idx is None:
            continue
        out = (slice(None),) * ax + (slice(a + keep_lo, a + keep_hi),) + (slice(None),) * (2 - ax)
        if len(parts) > 1:
            idx[(slice(None),) + out] = sub_idx
        part_d2 = np.zeros(sub_idx.shape[1:], dtype=np.float32)
        for k in range(3):
            pos = np.arange(shape[k], dtype=np.int32)[out[k]].reshape(
                [-1 if j == k else 1 for j in range(3)]
            )
            step = (sub_idx[k] - pos).astype(np.float32)
            step *= np.float32(sampling[k])
            part_d2 += step * step
        d2[out] = part_d2

    def nearest_at(mask):
        return np.ravel_multi_index(tuple(i[mask] for i in idx), shape)

    return np.sqrt(d2), nearest_at


_SHIFT = 33  # bits for the flat index in a packed (cost, index) int64
_QUANT = float(2**24)  # cost units per gauge^2
_SENTINEL = 2**29  # cost meaning "out of reach"


def _separable_nearest(seeds, h, plus, minus, gmax):
    """Exact nearest seed centre under the asymmetric gauge, by separable lower envelopes.

    The squared gauge is a sum of per-axis costs ``c_a(t) = (t / K_a(sign t))^2``, so the
    minimum over seeds separates into three 1-D passes (as in the Euclidean distance
    transform).  The first pass finds the nearest seed on each side along one axis; the two
    others take, for every offset ``t`` within reach (cost <= ``gmax^2``), the minimum of
    the shifted previous pass plus ``c_a(t)`` (loops over offsets, not voxels).  Costs and
    the flat index of the seed are packed into one int64 (cost in the high bits) so that
    ``np.minimum`` carries the nearest seed along.
    """
    shape = seeds.shape
    if seeds.size >= 2**_SHIFT:
        raise GeometryError(f"grid of {seeds.size} voxels is too large for margins")
    reach = np.where(plus > 0, plus, 0) + np.where(minus > 0, minus, 0)
    order = [int(a) for a in np.argsort(-(reach / h))]
    sentinel = np.int64(_SENTINEL) << _SHIFT
    packed = _first_pass(seeds, order[0], h, plus, minus, sentinel)
    limit = gmax * gmax
    for ax in order[1:]:
        src = packed
        packed = src.copy()
        for sign, semi in ((1, plus[ax]), (-1, minus[ax])):
            if semi <= 0:
                continue
            n_off = min(int(math.floor(semi * gmax / h[ax])), shape[ax] - 1)
            for t in range(1, n_off + 1):
                cost = (t * h[ax] / semi) ** 2
                if cost > limit:
                    break
                add = np.int64(int(round(cost * _QUANT))) << _SHIFT
                dst_sl = [slice(None)] * 3
                src_sl = [slice(None)] * 3
                if sign > 0:  # point above the seed along the axis
                    dst_sl[ax], src_sl[ax] = slice(t, None), slice(None, -t)
                else:
                    dst_sl[ax], src_sl[ax] = slice(None, -t), slice(t, None)
                dst = packed[tuple(dst_sl)]
                np.minimum(dst, src[tuple(src_sl)] + add, out=dst)
        np.minimum(packed, sentinel, out=packed)
    cost = (packed >> _SHIFT).astype(np.float64)
    nearest = packed & ((np.int64(1) << _SHIFT) - 1)
    dist = np.sqrt(cost / _QUANT)
    dist[cost >= _SENTINEL] = np.inf

    def nearest_at(mask):
        return nearest[mask]

    return dist, nearest_at


def _first_pass(seeds, ax, h, plus, minus, sentinel):
    """Nearest seed along one axis (each side), packed as (cost, flat index)."""
    shape = seeds.shape
    n = shape[ax]
    pos_shape = [1, 1, 1]
    pos_shape[ax] = n
    pos = np.arange(n).reshape(pos_shape)
    flat = np.arange(seeds.size, dtype=np.int64).reshape(shape)
    stride = int(np.prod(shape[ax + 1 :]))
    best = np.full(shape, sentinel, dtype=np.int64)
    # seed at or below (point above it: offset > 0, semi-axis plus), and at or above
    below = np.maximum.accumulate(np.where(seeds, pos, -1), axis=ax)
    above = np.flip(
        np.minimum.accumulate(np.flip(np.where(seeds, pos, n), axis=ax), axis=ax), axis=ax
    )
    for other, semi, valid in (
        (below, plus[ax], below >= 0),
        (above, minus[ax], above < n),
    ):
        gap = np.abs(pos - other) * h[ax]
        if semi > 0:
            cost = (gap / semi) ** 2
        else:
            cost = np.where(gap == 0, 0.0, np.inf)
        ok = valid & (cost < _SENTINEL / _QUANT)
        q = np.where(ok, np.round(cost * _QUANT), _SENTINEL).astype(np.int64)
        idx = flat + (other - pos) * stride
        cand = (q << _SHIFT) | np.where(ok, idx, 0)
        np.minimum(best, cand, out=best)
    return best


_ZERO_MM = 1e-9  # offsets smaller than this (mm) count as zero


def _gauge(v: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """Gauge norm of offsets ``v`` (M, 3) in mm: inf along an axis with no margin."""
    v = np.where(np.abs(v) <= _ZERO_MM, 0.0, v)
    semi = np.where(v > 0, plus, minus)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(v == 0, 0.0, v / semi)
    r = np.where((semi == 0) & (v != 0), np.inf, r)
    return np.sqrt(np.sum(r * r, axis=1))


_NEIGHBOURS = np.array([o for o in np.ndindex(3, 3, 3) if sum(abs(v - 1) for v in o) <= 2]) - 1
_FACES = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]])


def _gauge2(v: np.ndarray, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """Squared gauge norm (see :func:`_gauge`) for positive semi-axes (for ranking)."""
    if plus is minus:
        r = v / plus
    else:
        r = v / np.where(v > 0, plus, minus)
    return np.einsum("ij,ij->i", r, r)


def _keep_better(key, rows, flat, best_key, best_flat):
    """Where ``key`` beats ``best_key[rows]``, record it and the voxel ``flat[rows]``."""
    better = key < best_key[rows]
    sel = rows[better]
    best_key[sel] = key[better]
    best_flat[sel] = flat[better]


def _refine(points, nearest, phi, normal, h, plus, minus):
    """Signed distance (mm) of ``points`` from the expanded boundary, and its normal.

    Among the 19 voxels around each point's nearest seed centre, the boundary piece that
    stands nearest is chosen: for a partial voxel its plane's foot point (the centre
    projected onto the plane), for a full voxel with an empty face neighbour its box.  The
    gauge distance ``D`` to that piece is exact: to ``plane ∩ box`` for a partial voxel,
    where the box is closed only on the faces towards empty neighbours (a plane carries on
    into its partial neighbours, which closes the gaps between voxel planes), or to the box
    of a full voxel.  The value returned is ``(D - 1) * L``, ``L`` the extent of the margin
    shape along the new boundary normal: the distance (mm) outside the expanded boundary.
    """
    shape = np.array(phi.shape)
    m = len(points)
    p = points * h
    q0 = np.stack(np.unravel_index(nearest, phi.shape), axis=1)
    # seeds never lie on the array border (_dilate pads), so q0 +- 1 is always inside
    lo_b = q0.min(axis=0) - 1
    hi_b = q0.max(axis=0) + 2
    exposed = np.zeros(phi.shape, dtype=bool)
    block = tuple(slice(a, b) for a, b in zip(lo_b, hi_b, strict=True))
    exposed[block] = _exposed_full(phi[block])
    floor = 1e-3 * float(h.min())
    plus_k, minus_k = np.maximum(plus, floor), np.maximum(minus, floor)
    if np.array_equal(plus_k, minus_k):
        minus_k = plus_k
    best_key = np.full(m, np.inf)
    best_flat = np.zeros(m, dtype=np.intp)
    phi_flat = phi.reshape(-1)
    normal_flat = normal.reshape(3, -1)
    exposed_flat = exposed.reshape(-1)
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    rel = p - q0 * h  # point relative to the nearest seed centre (mm)
    flat0 = np.asarray(nearest, dtype=np.intp)
    half = h / 2
    for off in _NEIGHBOURS:
        flat = flat0 + int(off @ strides)
        ph = phi_flat[flat]
        ip = np.flatnonzero(np.isfinite(ph))
        ifl = np.flatnonzero((ph == -np.inf) & exposed_flat[flat])
        shift = off * h
        if len(ip):
            n = normal_flat[:, flat[ip]].T
            vf = rel[ip] - shift + ph[ip][:, None] * n  # point minus foot point
            _keep_better(_gauge2(vf, plus_k, minus_k), ip, flat[ip], best_key, best_flat)
        if len(ifl):
            vb = rel[ifl] - shift
            vb -= np.minimum(np.maximum(vb, -half), half)  # point minus nearest box point
            _keep_better(_gauge2(vb, plus_k, minus_k), ifl, flat[ifl], best_key, best_flat)
    value = np.full(m, np.inf)
    n_out = np.zeros((m, 3))
    have = np.isfinite(best_key)
    flat_q = best_flat[have]
    q = np.stack(np.unravel_index(flat_q, phi.shape), axis=1)
    ph = phi_flat[flat_q].astype(float)
    c = q * h
    lo, hi = c - h / 2, c + h / 2
    pp = p[have]
    part = np.isfinite(ph)
    n = np.where(part[:, None], normal_flat[:, flat_q].T.astype(float), 0.0)
    delta = np.where(part, -ph, 0.0)
    # partial voxels: open the box towards full neighbours and towards partial neighbours
    # whose plane runs on in about the same direction (closing the gaps between planes
    # of a smooth surface, not extending a plane across an edge or corner)
    ipart = np.flatnonzero(part)
    n_part, flat_part = n[ipart], flat_q[ipart]
    for f, (ax, sign) in enumerate(((0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1))):
        nb = flat_part + int(_FACES[f] @ strides)
        ph_nb = phi_flat[nb]
        runs_on = np.flatnonzero(np.isfinite(ph_nb))
        same_way = np.einsum("ij,ji->i", n_part[runs_on], normal_flat[:, nb[runs_on]]) >= _OPEN_COS
        open_mask = ph_nb == -np.inf
        open_mask[runs_on[same_way]] = True
        opened = ipart[open_mask]
        if sign < 0:
            lo[opened, ax] = -np.inf
        else:
            hi[opened, ax] = np.inf
    # a plane whose touching point lies on its piece: the offset plane's signed distance
    e = np.einsum("ij,ij->i", n, pp - c) - delta
    sn = np.where(n > 0, plus, minus) * n
    ln = np.linalg.norm(sn, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(
            (ln > 0)[:, None], (e / (ln * ln))[:, None] * (np.where(n > 0, plus, minus) * sn), 0
        )
    touch = np.where((ln > 0)[:, None], pp - step, pp - e[:, None] * n)
    in_box = np.all(np.abs(pp - c) <= h / 2 + 1e-9, axis=1)
    plane_ok = part & (in_box | np.all((touch >= lo - 1e-9) & (touch <= hi + 1e-9), axis=1))
    val = np.where(plane_ok, e - ln, np.inf)
    nrm = n.copy()
    # otherwise the exact nearest point of the piece (box, or plane within its bounds)
    rest = ~plane_ok
    if rest.any():
        r_val, r_n = _piece_distance(
            pp[rest], c[rest], lo[rest], hi[rest], n[rest], delta[rest], part[rest], plus, minus
        )
        val[rest] = r_val
        nrm[rest] = r_n
    value[have] = val
    n_out[have] = nrm
    return value.astype(np.float32), n_out.astype(np.float32)


def _piece_distance(p, c, lo, hi, n, delta, part, plus, minus):
    """Signed distance (mm) from the expansion of one piece (bounded plane or full box)."""
    beta = np.einsum("ij,ij->i", n, c) + delta
    x, feasible = _nearest_in_box_halfspace(p, lo, hi, n, beta, plus, minus)
    v = p - x
    d = _gauge(v, plus, minus)
    s = np.where(v > 0, plus, minus)
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = np.where(s > 0, v / (s * s), 0.0)
    gnorm = np.linalg.norm(grad, axis=1, keepdims=True)
    nrm = np.where(gnorm > 0, grad / np.where(gnorm > 0, gnorm, 1.0), n)
    length = np.linalg.norm(np.where(nrm > 0, plus, minus) * nrm, axis=1)
    val = np.full(len(p), np.inf)
    np.multiply(d - 1.0, length, out=val, where=feasible & np.isfinite(d))
    val[feasible & (d == 0) & ~part] = -np.inf  # inside a full voxel's box
    return val, nrm


def _exposed_full(phi: np.ndarray) -> np.ndarray:
    """Full voxels with an empty face neighbour (or on the edge of the array)."""
    empty = np.pad(phi == np.inf, 1, constant_values=True)
    near_empty = np.zeros(phi.shape, dtype=bool)
    n0, n1, n2 = phi.shape
    for dk, dj, di in _FACES:
        near_empty |= empty[1 + dk : 1 + dk + n0, 1 + dj : 1 + dj + n1, 1 + di : 1 + di + n2]
    return near_empty & (phi == -np.inf)


def _nearest_in_box_halfspace(p, lo, hi, n, beta, plus, minus):
    """Gauge-nearest point to ``p`` of ``{lo <= x <= hi} ∩ {n . x <= beta}`` (rows).

    The semi-axes are taken on the side of each axis the point lies on relative to the
    clamped point.  With weights ``1 / s_a^2`` the KKT conditions give
    ``x(lam) = clamp(p - lam * s^2 * n, lo, hi)``; ``n . x(lam)`` is piecewise linear and
    non-increasing in ``lam``, so the root of ``n . x(lam) = beta`` is found exactly from its
    breakpoints.  Bounds may be infinite; a zero semi-axis pins that coordinate.

    Returns ``(x, feasible)``.
    """
    xc = np.clip(p, lo, hi)
    ok0 = np.sum(n * xc, axis=1) <= beta + 1e-9
    s = np.where(p - xc > 0, plus, np.where(p - xc < 0, minus, np.where(n > 0, plus, minus)))
    rate = s * s * n  # dx/dlam = -rate while a coordinate is free
    # common case: the touching point on the unbounded plane lies within the bounds
    rn = np.einsum("ij,ij->i", rate, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam1 = np.where(rn > 0, (np.einsum("ij,ij->i", n, p) - beta) / rn, 0.0)
    x1 = p - lam1[:, None] * rate
    simple = ~ok0 & (rn > 0) & np.all((x1 >= lo) & (x1 <= hi), axis=1)
    x = np.where(ok0[:, None], xc, x1)  # the clamped point already in the half-space
    rest = ~(simple | ok0)
    feasible = np.ones(len(p), dtype=bool)
    if not rest.any():
        return x, feasible
    x[rest], feasible[rest] = _nearest_general(
        p[rest], lo[rest], hi[rest], n[rest], beta[rest], xc[rest], ok0[rest], rate[rest]
    )
    return x, feasible


def _nearest_general(p, lo, hi, n, beta, xc, ok0, rate):
    """Breakpoint search of :func:`_nearest_in_box_halfspace` (bounds active)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t_lo = np.where(rate > 0, (p - lo) / rate, np.where(rate < 0, (p - hi) / rate, np.inf))
        t_hi = np.where(rate > 0, (p - hi) / rate, np.where(rate < 0, (p - lo) / rate, -np.inf))
    # coordinate a is free for lam in (max(t_hi, 0), t_lo): enters at t_hi, saturates at t_lo
    bps = np.concatenate([np.zeros((len(p), 1)), np.clip(t_hi, 0, None), np.clip(t_lo, 0, None)], 1)
    bps = np.where(np.isfinite(bps), bps, np.inf)
    bps.sort(axis=1)

    def f(lam):
        x = np.clip(p - lam[:, None] * rate, lo, hi)
        return np.sum(n * x, axis=1)

    lam_prev = bps[:, 0]
    f_prev = f(lam_prev)
    lam_star = np.full(len(p), np.nan)
    done = ok0 | (f_prev <= beta)
    lam_star[done] = 0.0
    for k in range(1, bps.shape[1]):
        lam_k = bps[:, k]
        finite = np.isfinite(lam_k)
        f_k = np.where(finite, f(np.where(finite, lam_k, 0.0)), np.nan)
        hit = ~done & finite & (f_k <= beta)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(hit, (f_prev - beta) / (f_prev - f_k), 0.0)
            lam_star = np.where(hit, lam_prev + frac * (lam_k - lam_prev), lam_star)
        done |= hit
        lam_prev = np.where(finite, lam_k, lam_prev)
        f_prev = np.where(finite, f_k, f_prev)
    # beyond the last breakpoint: free coordinates move without bound
    rest = ~done
    if rest.any():
        lam_r = lam_prev[rest] + 1.0
        free = (np.clip(p[rest] - lam_r[:, None] * rate[rest], lo[rest], hi[rest]) != lo[rest]) & (
            np.clip(p[rest] - lam_r[:, None] * rate[rest], lo[rest], hi[rest]) != hi[rest]
        )
        slope = -np.sum(np.where(free, n[rest] * rate[rest], 0.0), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            lam_x = lam_prev[rest] + (f_prev[rest] - beta[rest]) / -slope
        lam_star[rest] = np.where(slope < 0, lam_x, np.nan)
    feasible = ok0 | np.isfinite(lam_star)
    lam = np.where(np.isfinite(lam_star), lam_star, 0.0)
    x = np.where(ok0[:, None], xc, np.clip(p - lam[:, None] * rate, lo, hi))
    return x, feasible
